package io.moemesh.cli.mesh;

import io.grpc.BindableService;
import io.grpc.InsecureServerCredentials;
import io.grpc.ServerCredentials;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.moemesh.model.MoeModel;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.tls.MeshCredentials;
import io.moemesh.service.tls.TlsSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * The main class of the fake service jars of {@link FakeHome}: reads its settings from the environment as the
 * real services do, serves gRPC health (and, as the gateway, {@link FakeGateway}; as the router, {@link FakeRouter}) —
 * an expert and the router over mutual TLS with their MOEMESH_*_TLS_* files, the gateway in plaintext (its public
 * port) — and misbehaves on request:
 * {@code -Dfake.crash=NAME} exits 1 at startup, {@code -Dfake.hang=NAME} never reports SERVING. As the kvcache-service
 * it serves health only (mutual TLS) and, like the real one, keeps a file in its SSD directory. With
 * {@code -Dfake.stop-log=FILE} each service appends its name to FILE when it gets SIGTERM (the order {@code down}
 * stops them in).
 */
public final class FakeServiceMain {
    private FakeServiceMain() {
    }

    public static void main(String[] args) throws Exception {
        boolean gateway = System.getenv("MOEMESH_GATEWAY_GRPC_PORT") != null;
        boolean router = System.getenv("MOEMESH_ROUTER_GRPC_PORT") != null;
        boolean kvcache = System.getenv("MOEMESH_KVCACHE_GRPC_PORT") != null;
        String prefix = gateway ? "MOEMESH_GATEWAY_" : router ? "MOEMESH_ROUTER_" : kvcache ? "MOEMESH_KVCACHE_"
                : "MOEMESH_EXPERT_";
        String name = gateway ? "gateway" : router ? "router" : kvcache ? "kvcache"
                : System.getenv("MOEMESH_EXPERT_INSTANCE_ID");
        System.out.println("fake " + name + " pid " + ProcessHandle.current().pid());
        System.getenv().entrySet().stream().filter(e -> e.getKey().startsWith("MOEMESH_") || e.getKey().startsWith("SERVER_"))
                .sorted(java.util.Map.Entry.comparingByKey())
                .forEach(e -> System.out.println("env " + e.getKey() + "=" + e.getValue()));
        System.out.println("jvm " + ProcessHandle.current().info().arguments().map(List::of).orElse(List.of()));
        if (name.equals(System.getProperty("fake.crash"))) {
            System.err.println("boom: scripted crash of " + name);
            System.exit(1);
        }
        Path placementFile = kvcache ? null : env(prefix + (router ? "INSTANCES_FROM" : "PLACEMENT_FILE"));
        if (kvcache) {
            // what the real service does with its SSD directory: keeps segment files there across restarts
            Path ssd = env(prefix + "SSD_DIR");
            java.nio.file.Files.createDirectories(ssd);
            java.nio.file.Files.writeString(ssd.resolve("fake-segment"), "started " + ProcessHandle.current().pid()
                    + System.lineSeparator(), java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.APPEND);
        } else {
            var placement = PlacementFiles.read(placementFile);
            System.out.println("placement epoch " + placement.getEpoch() + " with " + placement.getInstancesCount()
                    + " instances");
        }
        MoeModel model = gateway ? MoeModel.open(Path.of(System.getenv(prefix + "MODEL_DIR"))) : null;
        List<BindableService> services = gateway ? List.of(new FakeGateway(model))
                : router ? List.of(new FakeRouter(placementFile)) : List.of();
        ServerCredentials credentials = gateway ? InsecureServerCredentials.create()
                : MeshCredentials.load(TlsSettings.mtls(env(prefix + "TLS_CERT_CHAIN"), env(prefix + "TLS_PRIVATE_KEY"),
                        env(prefix + "TLS_CA_BUNDLE")), "moemesh.tls").server();
        GrpcServerLifecycle server = new GrpcServerLifecycle(name, System.getenv(prefix + "GRPC_HOST"),
                Integer.parseInt(System.getenv(prefix + "GRPC_PORT")), credentials, 64 << 20, Duration.ofSeconds(1),
                services, List.of());
        server.start();
        if (name.equals(System.getProperty("fake.hang"))) {
            server.health().setStatus("", ServingStatus.NOT_SERVING);
        }
        CountDownLatch stopped = new CountDownLatch(1);
        String stopLog = System.getProperty("fake.stop-log");
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (stopLog != null) {
                appendLine(Path.of(stopLog), name);
            }
            server.stop();
            System.out.println("fake " + name + " stopped gracefully");
            stopped.countDown();
        }));
        stopped.await();
    }

    /** One line appended under a file lock: the services of a mesh may stop at the same time. */
    private static void appendLine(Path file, String line) {
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file,
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE,
                java.nio.file.StandardOpenOption.APPEND); var ignored = ch.lock()) {
            ch.write(java.nio.ByteBuffer.wrap((line + System.lineSeparator()).getBytes(
                    java.nio.charset.StandardCharsets.UTF_8)));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static Path env(String name) {
        String v = System.getenv(name);
        if (v == null) {
            throw new IllegalStateException(name + " is not set");
        }
        return Path.of(v);
    }
}
