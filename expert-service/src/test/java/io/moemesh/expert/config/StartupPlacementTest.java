package io.moemesh.expert.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.assignment.Assignment;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.NoOpExpertBackend;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.settings.SettingRefusedException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** moemesh.expert.placement-file: the startup placement. */
class StartupPlacementTest {
    @TempDir
    Path dir;

    @Test
    void load_aPlacementFileOfANewerRouter_withFieldsThisVersionLacks_loadsItsExperts() throws Exception {
        try (ExpertModel model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL))) { // 4 layers × 8 experts
            List<Instance> instances = List.of(Instance.newBuilder().setId("expert-0").setEndpoint("127.0.0.1:1").build(),
                    Instance.newBuilder().setId("expert-1").setEndpoint("127.0.0.1:2").build());
            Placement p = EvenPlacement.build(5, instances, model.numLayers(), model.dispatchableExperts(), false, 1);
            // A field added to Instance after this version, as failure_domain was: a rolling upgrade's newer router
            // writes it before every expert-service knows it.
            String json = PlacementFiles.toJson(p).replace("\"id\": \"expert-0\",",
                    "\"id\": \"expert-0\", \"acceleratorModel\": \"H100\",");
            assertThat(json).contains("acceleratorModel");
            Path file = dir.resolve("placement.json");
            Files.writeString(file, json, StandardCharsets.UTF_8);
            NoOpExpertBackend backend = new NoOpExpertBackend(model.hiddenSize());
            ResidentSet resident = new ResidentSet(Long.MAX_VALUE, backend::load, model.numLayers());
            AssignmentManager manager = new AssignmentManager(model, "expert-0", resident, Assignment.empty(),
                    Duration.ofSeconds(10), System::nanoTime);

            StartupPlacement.load(file, "expert-0", model, manager);

            assertThat(manager.servingEpoch()).isEqualTo(5);
            assertThat(manager.current().experts()).hasSize(model.numLayers() * model.dispatchableExperts() / 2)
                    .contains(new ExpertKey(0, 0)).doesNotContain(new ExpertKey(0, 1));
        }
    }

    @Test
    void load_aPlacementFileWithoutAnEpoch_isARefusedSetting_namingItAndTheFile() throws Exception {
        try (ExpertModel model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL))) {
            Instance only = Instance.newBuilder().setId("expert-0").setEndpoint("127.0.0.1:1").build();
            Placement p = EvenPlacement.build(1, List.of(only), model.numLayers(), model.dispatchableExperts(),
                    false, 1).toBuilder().clearEpoch().build();
            Path file = dir.resolve("placement.json");
            PlacementFiles.write(file, p);
            NoOpExpertBackend backend = new NoOpExpertBackend(model.hiddenSize());
            AssignmentManager manager = new AssignmentManager(model, "expert-0",
                    new ResidentSet(Long.MAX_VALUE, backend::load, model.numLayers()), Assignment.empty(),
                    Duration.ofSeconds(10), System::nanoTime);

            assertThatThrownBy(() -> StartupPlacement.load(file, "expert-0", model, manager))
                    .isInstanceOfSatisfying(SettingRefusedException.class,
                            e -> assertThat(e.setting()).isEqualTo("moemesh.expert.placement-file"))
                    .hasMessage("moemesh.expert.placement-file " + file + ": placement epoch 0: epoch must be ≥ 1 (a "
                            + "missing epoch reads as 0)");
            assertThat(manager.servingEpoch()).isZero();
        }
    }
}
