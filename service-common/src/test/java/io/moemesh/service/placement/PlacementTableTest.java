package io.moemesh.service.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import java.util.List;
import java.util.function.UnaryOperator;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class PlacementTableTest {
    private static List<Instance> instances(int n) {
        return IntStream.range(0, n).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                .setEndpoint("127.0.0.1:" + (9000 + i)).setDeviceSlot(i).build()).toList();
    }

    @ParameterizedTest(name = "{0} instances x{1}")
    @CsvSource({"1, 1", "2, 1", "3, 2", "3, 3"})
    void evenPlacement_placesEveryExpertOnDistinctReplicas(int n, int replicas) {
        Placement p = EvenPlacement.build(3, instances(n), 4, 8, true, replicas);
        PlacementTable t = PlacementTable.of(p, 4, 9);
        for (int l = 0; l < 4; l++) {
            for (int e = 0; e < 9; e++) {
                assertThat(t.holders()[l][e]).hasSize(replicas).doesNotHaveDuplicates();
            }
            assertThat(t.shared()[l][8]).isTrue();
        }
        int total = IntStream.range(0, n).map(i -> t.assignedTo("expert-" + i).size()).sum();
        assertThat(total).isEqualTo(4 * 9 * replicas);
        assertThat(PlacementFiles.parse(PlacementFiles.toJson(p), "x")).isEqualTo(p);
    }

    @Test
    void epochAbove2To63_isValid_andNamedUnsigned() {
        Placement p = EvenPlacement.build(-1L, instances(1), 1, 2, false, 1);
        assertThat(PlacementTable.of(p, 1, 2).epoch()).isEqualTo(-1L);
        assertThatThrownBy(() -> PlacementTable.of(p.toBuilder().clearInstances().build(), 1, 2))
                .hasMessageStartingWith("placement epoch 18446744073709551615: no instances");
    }

    @Test
    void fileRoundTrip_isProtobufJson() {
        Placement p = EvenPlacement.build(7, instances(2), 1, 2, false, 1);
        assertThat(PlacementFiles.toJson(p)).contains("\"instanceIds\"").contains("\"epoch\": \"7\"");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "missing expert      | is not placed",
        "unknown instance    | unknown instance",
        "extra layer         | layer 4 does not exist",
        "layer 2^32-1        | layer 4294967295 does not exist",
        "expert 2^31         | expert 2147483648 does not exist",
        "bad endpoint        | is neither host:port nor unix:///absolute/path.sock",
        "relative socket     | unix:///absolute/path.sock (three slashes",
        "duplicate instance  | appears twice",
        "no epoch            | placement epoch 0: epoch must be ≥ 1",
    })
    void invalidPlacement_isRefusedNamingTheProblem(String kind, String message) {
        Placement good = EvenPlacement.build(1, instances(2), 4, 8, false, 1);
        UnaryOperator<Placement> breakIt = switch (kind.strip()) {
            case "missing expert" -> p -> p.toBuilder().setLayers(0, p.getLayers(0).toBuilder().removeExperts(3)).build();
            case "unknown instance" -> p -> p.toBuilder().setLayers(1, p.getLayers(1).toBuilder()
                    .setExperts(0, p.getLayers(1).getExperts(0).toBuilder().setInstanceIds(0, "ghost"))).build();
            case "extra layer" -> p -> p.toBuilder().addLayers(p.getLayers(0).toBuilder().setLayer(4)).build();
            // uint32 values that read as negative ints in Java
            case "layer 2^32-1" -> p -> p.toBuilder().setLayers(3, p.getLayers(3).toBuilder().setLayer(-1)).build();
            case "expert 2^31" -> p -> p.toBuilder().setLayers(1, p.getLayers(1).toBuilder()
                    .setExperts(0, p.getLayers(1).getExperts(0).toBuilder().setExpert(Integer.MIN_VALUE))).build();
            case "bad endpoint" -> p -> p.toBuilder().setInstances(0, p.getInstances(0).toBuilder().setEndpoint("nohost")).build();
            case "relative socket" -> p -> p.toBuilder().setInstances(0, p.getInstances(0).toBuilder()
                    .setEndpoint("unix://relative.sock")).build();
            // placement.proto: epochs start at 1; an ExpertBatch under epoch 0 would skip the instances' epoch check
            case "no epoch" -> p -> p.toBuilder().clearEpoch().build();
            default -> p -> p.toBuilder().setInstances(1, p.getInstances(0)).build();
        };
        assertThatThrownBy(() -> PlacementTable.of(breakIt.apply(good), 4, 8))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining(message);
    }
}
