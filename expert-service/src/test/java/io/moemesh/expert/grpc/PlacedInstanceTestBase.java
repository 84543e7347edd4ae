package io.moemesh.expert.grpc;

import io.grpc.ManagedChannel;
import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.expert.support.TestCertificates;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalManagementPort;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * One real expert-service (qwen2moe-tiny, with its shared expert) on real sockets: instance expert-0 of a
 * two-instance placement file at epoch 3, so it holds half the experts (EvenPlacement: expert e of layer l
 * lives on expert-((e + l) % 2)). A small memory budget (about five experts) makes LRU eviction happen.
 * Mutual TLS as deployed: the instance has its mesh certificate, the tests call as the gateway does (identity
 * gateway). Subclasses share the Spring context.
 */
@SpringBootTest(classes = ExpertServiceApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT,
        properties = {"moemesh.expert.grpc-port=0", "moemesh.expert.instance-id=expert-0",
            "moemesh.expert.device-slot=1", "moemesh.expert.memory-budget-bytes=200000",
            "moemesh.expert.compute-threads=2"})
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class PlacedInstanceTestBase {
    static final long EPOCH = 3;
    static final Path MODEL = TestModels.dir(TestModels.QWEN2_MOE);
    static final ModelConfig CONFIG = ModelConfigReader.read(MODEL);
    static final int H = CONFIG.hiddenSize();
    private static Path placementFile;

    @Autowired
    GrpcServerLifecycle grpcServer;
    @LocalServerPort
    int httpPort;
    @LocalManagementPort
    int managementPort;
    ManagedChannel channel;

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry registry) {
        registry.add("moemesh.expert.model-dir", MODEL::toString);
        registry.add("moemesh.expert.placement-file", () -> placementFile().toString());
        TestCertificates.serve(registry, "expert-0");
    }

    static synchronized Path placementFile() {
        if (placementFile == null) {
            try {
                Path dir = Files.createTempDirectory("expert-placement");
                dir.toFile().deleteOnExit();
                placementFile = dir.resolve("placement.json");
                placementFile.toFile().deleteOnExit();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            List<Instance> instances = List.of(
                    Instance.newBuilder().setId("expert-0").setEndpoint("127.0.0.1:1").build(),
                    Instance.newBuilder().setId("expert-1").setEndpoint("127.0.0.1:2").build());
            Placement p = EvenPlacement.build(EPOCH, instances, CONFIG.numLayers(), CONFIG.numExperts(), true, 1);
            PlacementFiles.write(placementFile, p);
        }
        return placementFile;
    }

    /** Whether expert-0 holds (layer, expert) in the placement file. */
    static boolean held(int layer, int expert) {
        return (expert + layer) % 2 == 0;
    }

    @BeforeAll
    void openChannel() {
        channel = TestCertificates.channel(grpcServer.port(), "gateway");
    }

    @AfterAll
    void closeChannel() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
}
