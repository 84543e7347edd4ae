package io.moemesh.service.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.proto.router.v1.Placement;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Placement files are read forward-compatibly: fields a newer router added are ignored and named, bad values refused. */
class PlacementFilesTest {
    /** What a newer router might write: fields this version does not know, at three depths, in both spellings. */
    private static final String NEWER = """
            {"epoch": "4", "planner": "affinity",
             "instances": [{"id": "expert-0", "endpoint": "127.0.0.1:7101", "deviceSlot": 1,
                            "memoryBudgetBytes": "1073741824", "failureDomain": "node-a", "rack_id": "r7"},
                           {"id": "expert-1", "endpoint": "unix:///tmp/e1.sock", "zone": {"name": "z1"}}],
             "layers": [{"layer": 0, "experts": [{"expert": 0, "instanceIds": ["expert-0", "expert-1"],
                                                  "hotness": 0.5},
                                                 {"expert": 1, "instance_ids": ["expert-1"], "shared": true}]}]}
            """;

    @TempDir
    Path dir;

    private Path file(String json) throws IOException {
        Path f = dir.resolve("placement.json");
        Files.writeString(f, json, StandardCharsets.UTF_8);
        return f;
    }

    @Test
    void read_aFileWithFieldsUnknownToThisVersion_ignoresThem_andKeepsEveryKnownField() throws IOException {
        Placement p = PlacementFiles.read(file(NEWER));

        assertThat(p).isEqualTo(Placement.newBuilder().setEpoch(4)
                .addInstances(Instance.newBuilder().setId("expert-0").setEndpoint("127.0.0.1:7101").setDeviceSlot(1)
                        .setMemoryBudgetBytes(1L << 30).setFailureDomain("node-a"))
                .addInstances(Instance.newBuilder().setId("expert-1").setEndpoint("unix:///tmp/e1.sock"))
                .addLayers(LayerPlacement.newBuilder().setLayer(0)
                        .addExperts(ExpertPlacement.newBuilder().setExpert(0).addInstanceIds("expert-0")
                                .addInstanceIds("expert-1"))
                        .addExperts(ExpertPlacement.newBuilder().setExpert(1).addInstanceIds("expert-1")
                                .setShared(true)))
                .build());
    }

    @Test
    void parseReporting_namesEachIgnoredFieldByItsPath() {
        PlacementFiles.Parsed parsed = PlacementFiles.parseReporting(NEWER, "newer.json");

        assertThat(parsed.ignoredFields()).containsExactlyInAnyOrder("planner", "instances[0].rack_id", "instances[1].zone",
                "layers[0].experts[0].hotness");
        assertThat(parsed.placement().getInstances(0).getFailureDomain()).isEqualTo("node-a");
    }

    @Test
    void parseReporting_aFileOfKnownFieldsOnly_ignoresNothing() {
        Placement p = EvenPlacement.build(3, java.util.List.of(Instance.newBuilder().setId("expert-0")
                .setEndpoint("127.0.0.1:1").setFailureDomain("node-a").build()), 2, 4, true, 1);

        PlacementFiles.Parsed parsed = PlacementFiles.parseReporting(PlacementFiles.toJson(p), "x");

        assertThat(parsed.placement()).isEqualTo(p);
        assertThat(parsed.ignoredFields()).isEmpty();
    }

    @ParameterizedTest
    @ValueSource(strings = {
        // a known field with a value of the wrong type, next to an unknown field or alone
        "{\"epoch\": \"4\", \"planner\": \"affinity\", \"instances\": [{\"id\": \"e0\", \"deviceSlot\": \"two\"}]}",
        "{\"epoch\": \"four\"}",
        "{\"epoch\": \"4\", \"rack\": \"r1\", \"layers\": {\"layer\": 0}}",
        "{\"epoch\": \"4\", \"layers\": [{\"layer\": -1, \"hotness\": 1}]}",
        // not JSON
        "{\"epoch\": \"4\", \"instances\": [",
        "not json",
        // no field of a Placement at all: some other file, whatever wrote it
        "{\"unknownField\": 1}",
        "[]"})
    void read_aKnownFieldOfTheWrongType_malformedJson_orNoPlacementField_stillFails_namingTheFile(String json) throws IOException {
        Path f = file(json);

        assertThatThrownBy(() -> PlacementFiles.read(f)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith(f + ": not a moemesh.router.v1.Placement in JSON (");
    }
}
