package io.moemesh.cli.bench.mesh;

import io.moemesh.cli.bench.BenchOptions;
import io.moemesh.cli.bench.LoadAverage;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.SocketDirectory;
import io.moemesh.model.synth.SynthArch;
import io.moemesh.model.synth.SynthDtype;
import io.moemesh.model.synth.SynthSpec;
import io.moemesh.model.synth.SyntheticCheckpoint;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.service.expert.SharedMemory;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.service.tls.CertificateDirectory;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench mesh}: (a) the per-layer hop against a no-op expert-service, next to an empty round trip
 * and a memcpy of the payload measured in the same run, per transport (TCP with mutual TLS, plaintext TCP, a Unix
 * domain socket as {@code moemesh up} runs it: plaintext to the same uid, kernel-checked, tensors through a
 * shared-memory arena; the same without the arena; mutual TLS over a domain socket); (b) with {@code --decode MODEL_DIR}, decode tokens/s of the mesh (the gateway
 * and 2 expert instances, on {@code moemesh up}'s default transport) ÷ the reference engine in one process, 1 and
 * 32 concurrent sequences.
 */
@Command(name = "mesh", mixinStandardHelpOptions = true,
        description = "Per-layer hop gateway → expert-service → gateway (no-op backend) vs an empty round trip and "
                + "a memcpy; with --decode, mesh ÷ monolithic decode tokens/s.")
public final class MeshBenchCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--hidden", split = ",", defaultValue = "1024,4096", description = "Hidden sizes (default ${DEFAULT-VALUE}).")
    List<Integer> hidden;

    @Option(names = "--tokens", split = ",", defaultValue = "1,32,128", description = "Tokens per message (default ${DEFAULT-VALUE}).")
    List<Integer> tokens;

    @Option(names = "--wire", split = ",", defaultValue = "f32,bf16", description = "Wire dtypes: f32 (exact), bf16 (lossy).")
    List<String> wire;

    @Option(names = "--transport", split = ",", defaultValue = "mtls,unix",
            description = "Transports of the hop: mtls (TCP with mutual TLS, the default of every mesh), plaintext "
                    + "(TCP, the explicit opt-out: to see what TLS costs, side by side), unix (a Unix domain socket "
                    + "as `moemesh up` runs gateway → expert on Linux: plaintext, served to the same uid only, "
                    + "unix-socket-security=peer-uid, tensors through the stream's shared-memory arena), unix-inline "
                    + "(the same socket, tensors in the messages: moemesh.gateway.dispatch.shared-memory-slots=0), "
                    + "unix-tls (mutual TLS over the domain socket, unix-socket-security=tls) (default ${DEFAULT-VALUE}).")
    List<String> transport;

    @Option(names = "--iterations", defaultValue = "2000", description = "Measured round trips per row.")
    int iterations;

    @Option(names = "--warmup", defaultValue = "500", description = "Warm-up round trips per round; each row "
            + "warms up in rounds until the JIT of both ends settled (0: no warm-up).")
    int warmup;

    @Option(names = "--work-dir", defaultValue = "target/bench-mesh",
            description = "Synthetic models, certificates and logs.")
    Path workDir;

    @Option(names = "--decode", paramLabel = "MODEL_DIR",
            description = "Also measure decode tokens/s: mesh of 2 expert instances ÷ the reference engine.")
    Path decodeModel;

    @Option(names = "--mesh-jvm-option", paramLabel = "OPTION",
            description = "With --decode: an extra JVM option for the mesh's services, e.g. "
                    + "--mesh-jvm-option=-Dmoemesh.kernel.threads=1 (repeatable).")
    List<String> meshJvmOptions = new ArrayList<>();

    @Option(names = "--decode-rounds", defaultValue = "3",
            description = "With --decode: measured rounds per sequence count, the two sides alternating; each side's "
                    + "median counts (default ${DEFAULT-VALUE}).")
    int decodeRounds;

    @Option(names = "--skip-hop", description = "Only the decode comparison.")
    boolean skipHop;

    @Override
    public Integer call() throws Exception {
        List<DType> wires = validate();
        List<String> transports = transport.stream().map(String::strip).distinct().toList();
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        Path home = Path.of(System.getProperty("moemesh.home", ".")).toAbsolutePath();
        Path work = home.resolve(workDir);
        if (!skipHop) {
            String loadBefore = LoadAverage.now();
            out.println("Per-layer hop, one message in flight, no-op expert backend (" + iterations + " round trips per row):");
            out.println();
            HopBenchmark.printHeader(out);
            // Mutual TLS, the default every mesh runs with: a CA and certificates of the two ends in <work>/tls/.
            CertificateDirectory certificates = CertificateDirectory.create(work.resolve("tls"),
                    List.of(NoOpExpertProcess.IDENTITY, MeshLauncher.GATEWAY));
            List<Integer> warmupRounds = new ArrayList<>();
            List<WireFloor.Measured> measured = new ArrayList<>();
            for (String tr : transports) {
                CertificateDirectory tls = tr.equals("plaintext") ? null : certificates;
                // unix, unix-tls: the same no-op instance (mutual TLS on its TCP port) also listens on a domain
                // socket, plaintext to its own uid (peer-uid) or with mutual TLS, and the client uses that; the empty
                // round trip of each row goes over the same socket, so each row's floor is its own transport's.
                UnixSocketSecurity unixSecurity = tr.equals("unix-tls") ? UnixSocketSecurity.TLS
                        : UnixSocketSecurity.PEER_UID;
                Path socket = tr.startsWith("unix")
                        ? SocketDirectory.choose(work.resolve("hop"), List.of(NoOpExpertProcess.IDENTITY), err)
                                .resolve(NoOpExpertProcess.IDENTITY + ".sock")
                        : null;
                for (int h : hidden) {
                    Path model = hopModel(work, h);
                    err.printf("moemesh bench mesh: starting a no-op expert-service for hidden %d (%s)%n", h, tr);
                    err.flush();
                    try (NoOpExpertProcess expert = new NoOpExpertProcess(home, model, work.resolve("logs"), tls, socket,
                            unixSecurity);
                         HopClient client = new HopClient(expert.endpoint, NoOpExpertProcess.credentials(tls),
                                 unixSecurity, tr.equals("unix") ? SharedMemory.defaults() : SharedMemory.OFF)) {
                        HopBenchmark bench = new HopBenchmark(client, h, warmup, iterations,
                                Map.of("bench", ProcessHandle.current().pid(), "expert-noop", expert.pid()));
                        for (DType dtype : wires) {
                            for (int t : tokens) {
                                HopBenchmark.Row row = bench.run(t, dtype);
                                HopBenchmark.print(out, row, tr);
                                measured.add(new WireFloor.Measured(row, tr));
                                warmupRounds.add(row.warmupRounds());
                            }
                        }
                    }
                }
            }
            out.println();
            out.printf(Locale.ROOT, "Each row warmed up in rounds of %d round trips until the JIT settled (both JVMs' "
                    + "compiler threads under %.0f%% of their CPU in %d rounds in a row, at least %d rounds): %d–%d rounds.%n",
                    warmup, 100 * JitSettledWarmUp.SETTLED_SHARE, JitSettledWarmUp.QUIET_RUNS,
                    HopBenchmark.MIN_WARMUP_ROUNDS, warmupRounds.stream().mapToInt(Integer::intValue).min().orElse(0),
                    warmupRounds.stream().mapToInt(Integer::intValue).max().orElse(0));
            WireFloor.print(out, measured, warmup, iterations);
            out.println("load average (1, 5, 15 min): " + loadBefore + " before, " + LoadAverage.now() + " after");
            out.flush();
        }
        if (decodeModel != null) {
            new DecodeComparison(home, decodeModel, work, err, meshJvmOptions, decodeRounds).run(out);
        }
        return 0;
    }

    /** Every option before a process starts; returns the wire dtypes. */
    private List<DType> validate() {
        List<DType> wires = new ArrayList<>();
        for (String w : wire) {
            wires.add(switch (w.strip()) {
                case "f32" -> DType.DTYPE_F32;
                case "bf16" -> DType.DTYPE_BF16;
                default -> throw new IllegalArgumentException("--wire takes f32 or bf16, got " + w);
            });
        }
        for (String t : transport) {
            if (!List.of("mtls", "plaintext", "unix", "unix-inline", "unix-tls").contains(t.strip())) {
                throw new IllegalArgumentException("--transport takes mtls, plaintext, unix, unix-inline or unix-tls, got "
                        + t);
            }
            if (t.strip().startsWith("unix") && !InstanceEndpoint.domainSocketsAvailable()) {
                throw new IllegalArgumentException("--transport " + t.strip() + " needs Unix domain sockets over Netty's epoll "
                        + "transport, which this host does not have; use --transport mtls,plaintext");
            }
        }
        for (int h : hidden) {
            if (h < 128 || h % 128 != 0) {
                throw new IllegalArgumentException("--hidden must be a positive multiple of 128 (128-wide heads), got " + h);
            }
        }
        for (int t : tokens) {
            BenchOptions.positive("--tokens", t);
        }
        BenchOptions.positive("--iterations", iterations);
        BenchOptions.notNegative("--warmup", warmup);
        BenchOptions.positive("--decode-rounds", decodeRounds);
        if (decodeModel != null && !Files.isRegularFile(decodeModel.resolve("config.json"))) {
            throw new IllegalArgumentException("--decode " + decodeModel + ": no config.json there");
        }
        if (skipHop && decodeModel == null) {
            throw new IllegalArgumentException("--skip-hop leaves nothing to measure without --decode MODEL_DIR");
        }
        return wires;
    }

    /** A one-layer checkpoint of hidden size h: the no-op backend reads no weights, only the shapes. */
    private static Path hopModel(Path work, int h) throws IOException {
        Path dir = work.resolve("hop-h" + h);
        if (!Files.exists(dir.resolve("config.json"))) {
            SyntheticCheckpoint.write(new SynthSpec(SynthArch.MIXTRAL, h, 64, 1, 2, 2, h / 128, 1, 512, OptionalInt.of(128),
                    OptionalInt.empty(), SynthDtype.BF16, 256, 0), dir, "moemesh bench mesh");
        }
        return dir;
    }
}
