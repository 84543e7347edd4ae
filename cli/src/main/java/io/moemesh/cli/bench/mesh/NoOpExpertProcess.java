package io.moemesh.cli.bench.mesh;

import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.ServiceProcess;
import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.service.tls.CertificateDirectory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * An expert-service process with the no-op backend holding every expert: the far end of the hop benchmark.
 * Started, awaited and stopped the way {@code moemesh up} starts its services ({@link ServiceProcess}, the same
 * JVM flags); its output goes to a log file. Its port is mutual TLS, as every expert-service's is by default:
 * its certificate is {@link #IDENTITY}'s of {@code tls}, and clients call it as {@link MeshLauncher#GATEWAY}.
 */
final class NoOpExpertProcess implements AutoCloseable {
    static final String IDENTITY = "expert-noop";
    private final ProcessHandle process;
    final int port;
    final Path log;
    /** {@code unix:///path} of its domain socket, or {@code 127.0.0.1:port} when it listens on TCP only. */
    final String endpoint;

    /**
     * @param tls holds certificates for {@link #IDENTITY} and {@link MeshLauncher#GATEWAY}; null = plaintext (the
     *            explicit opt-out, to measure what mutual TLS costs next to it)
     * @param unixSocket a domain socket it listens on too (its {@link #endpoint}), or null for TCP only
     * @param unixSecurity how that socket is secured ({@code moemesh.expert.unix-socket-security})
     */
    NoOpExpertProcess(Path home, Path model, Path logDir, CertificateDirectory tls, Path unixSocket,
                      UnixSocketSecurity unixSecurity) {
        Path jar = home.resolve("expert-service/target/moemesh-expert-service.jar");
        if (!Files.isRegularFile(jar)) {
            throw new IllegalArgumentException(jar + " not found: build with ./mvnw install -DskipTests");
        }
        port = MeshLauncher.freePorts(1)[0];
        log = logDir.resolve("expert-noop-" + port + ".log");
        List<String> command = new ArrayList<>();
        command.add(ProcessHandle.current().info().command().orElse("java"));
        command.addAll(MeshLauncher.SERVICE_JVM_FLAGS);
        command.addAll(List.of("-Xmx2g", "-jar", jar.toString(), "--moemesh.expert.model-dir=" + model,
                "--moemesh.expert.backend=noop", "--moemesh.expert.assign-all=true",
                "--moemesh.expert.grpc-port=" + port, "--server.port=0", "--server.address=127.0.0.1", "--management.server.port=0",
                "--moemesh.expert.native-cache-dir=" + logDir.resolve("native")));
        if (unixSocket != null) {
            command.add("--moemesh.expert.grpc-unix-socket=" + unixSocket);
            command.add("--moemesh.expert.unix-socket-security=" + unixSecurity.value());
        }
        endpoint = unixSocket == null ? "127.0.0.1:" + port : InstanceEndpoint.unix(unixSocket).target();
        if (tls == null) {
            command.add("--moemesh.expert.tls.mode=plaintext");
        } else {
            command.addAll(List.of("--moemesh.expert.tls.cert-chain=" + tls.certChain(IDENTITY),
                    "--moemesh.expert.tls.private-key=" + tls.privateKey(IDENTITY),
                    "--moemesh.expert.tls.ca-bundle=" + tls.caBundle()));
        }
        MeshState.Service service = new MeshState.Service(IDENTITY, 0, "", port, 0, log.toString(), command, Map.of());
        process = ServiceProcess.start(service).toHandle();
        try {
            ServiceProcess.awaitServing(service, process, Instant.now().plus(Duration.ofMinutes(3)), credentials(tls));
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** The process's id (its JIT's CPU ends the hop rows' warm-up). */
    long pid() {
        return process.pid();
    }

    /** The client side of {@code tls}: the gateway's certificate, or plaintext when {@code tls} is null. */
    static ChannelCredentials credentials(CertificateDirectory tls) {
        return tls == null ? InsecureChannelCredentials.create() : tls.channelCredentials(MeshLauncher.GATEWAY);
    }

    @Override
    public void close() {
        ServiceProcess.stop(List.of(process), Duration.ofSeconds(10));
    }
}
