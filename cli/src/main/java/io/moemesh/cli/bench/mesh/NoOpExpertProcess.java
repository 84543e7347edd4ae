package io.moemesh.cli.bench.mesh;

import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * An expert-service process with the no-op backend holding every expert: the far end of the hop benchmark.
 * Its output goes to a log file; it is stopped on close.
 */
final class NoOpExpertProcess implements AutoCloseable {
    private final Process process;
    final int port;
    final Path log;

    NoOpExpertProcess(Path home, Path model, Path logDir) {
        Path jar = home.resolve("expert-service/target/moemesh-expert-service.jar");
        if (!Files.isRegularFile(jar)) {
            throw new IllegalArgumentException(jar + " not found: build with ./mvnw install -DskipTests");
        }
        port = freePort();
        log = logDir.resolve("expert-noop-" + port + ".log");
        String java = ProcessHandle.current().info().command().orElse("java");
        try {
            Files.createDirectories(logDir);
            process = new ProcessBuilder(List.of(java, "--add-modules", "jdk.incubator.vector",
                    "--enable-native-access=ALL-UNNAMED", "-Xmx2g", "-jar", jar.toString(),
                    "--moemesh.expert.model-dir=" + model, "--moemesh.expert.backend=noop",
                    "--moemesh.expert.assign-all=true", "--moemesh.expert.grpc-port=" + port, "--server.port=0",
                    "--moemesh.expert.native-cache-dir=" + logDir.resolve("native")))
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + jar, e);
        }
        awaitServing();
    }

    private void awaitServing() {
        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
        try {
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
            while (System.nanoTime() < deadline) {
                if (!process.isAlive()) {
                    throw new IllegalStateException("expert-service exited; see " + log);
                }
                try {
                    if (HealthGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.SECONDS)
                            .check(HealthCheckRequest.getDefaultInstance()).getStatus()
                            == HealthCheckResponse.ServingStatus.SERVING) {
                        return;
                    }
                } catch (RuntimeException notYet) {
                    // still starting
                }
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(200));
            }
            throw new IllegalStateException("expert-service did not become SERVING within 3 minutes; see " + log);
        } finally {
            ch.shutdownNow();
        }
    }

    private static int freePort() {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
    }
}
