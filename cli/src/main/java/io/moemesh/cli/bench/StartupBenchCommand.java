package io.moemesh.cli.bench;

import io.moemesh.cli.mesh.AotCache;
import io.moemesh.cli.mesh.MeshHome;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshSpec;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.cli.mesh.ServiceJvmOptions;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.ToDoubleFunction;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench startup}: cold start (issue 12, item 5). Per run it times {@code ./moemesh up} as a user runs
 * it ({@link LauncherUp}: the script as a child process, its own JVM's start included; gateway, the experts, the
 * router and the kvcache-service started at once) until it returns, every service SERVING on gRPC health, then, in
 * that running mesh, each service alone: SIGKILL, start it again with its recorded command, time process start →
 * SERVING (health polled every 100 ms). Runs with the launcher's AOT caches ({@link AotCache}) and without
 * ({@code MOEMESH_AOT_CACHE=off}); missing caches are built by one unmeasured {@code up} first. The medians go to a
 * markdown table with the load average before and after, since a loaded machine stretches every figure.
 *
 * <p>Beside each wall time it reports the CPU seconds the process used until SERVING ({@link ProcessCpu}: user +
 * system, split into C2 and C1 compiler threads, GC, {@code main} and the rest; for {@code up}, all services
 * together, each sampled when {@code up} reported it SERVING ({@link ServingCpu}), and the launcher JVM). On fewer
 * cores than starting JVMs, {@code up} takes about the sum of those, and they hardly depend on
 * the machine's other load, unlike the wall times: they are what a cut of start-up work is judged by.
 */
@Command(name = "startup", mixinStandardHelpOptions = true,
        description = "Cold start: `up` → every service SERVING, and each service alone (kill, start, gRPC health "
                + "SERVING), with and without the AOT cache; median of N runs, with the load average.")
final class StartupBenchCommand implements Callable<Integer> {
    /** The services timed alone, by their mesh name; expert-0 stands for every expert. */
    static final List<String> SERVICES = List.of("expert-0", MeshLauncher.ROUTER, MeshLauncher.KVCACHE,
            MeshLauncher.GATEWAY);

    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR", description = "Model directory (default models/mixtral-tiny).")
    Path model;

    @Option(names = "--experts", defaultValue = "2", paramLabel = "N", description = "Expert-service instances (default ${DEFAULT-VALUE}).")
    int experts;

    @Option(names = "--runs", defaultValue = "3", paramLabel = "N", description = "Measured runs per mode; medians shown (default ${DEFAULT-VALUE}).")
    int runs;

    @Option(names = "--aot", defaultValue = "both", paramLabel = "MODE",
            description = "on (with the AOT cache), off (without) or both (default ${DEFAULT-VALUE}).")
    String aot;

    @Option(names = "--services", split = ",", paramLabel = "NAME",
            description = "The services to time alone (default expert-0,router,kvcache,gateway; none: only `up`).")
    List<String> services = new ArrayList<>(SERVICES);

    @Option(names = "--state-dir", paramLabel = "DIR", description = "Where the meshes run (default <repository>/.moemesh/bench-startup).")
    Path stateDir;

    @Mixin
    ServiceJvmOptions jvm = new ServiceJvmOptions("1g");

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        BenchOptions.positive("--runs", runs);
        BenchOptions.positive("--experts", experts);
        List<Boolean> modes = switch (aot.strip().toLowerCase(Locale.ROOT)) {
            case "on" -> List.of(true);
            case "off" -> List.of(false);
            case "both" -> List.of(true, false);
            default -> throw new IllegalArgumentException("--aot must be on, off or both, got " + aot);
        };
        for (String s : services) {
            if (!SERVICES.contains(s) && !s.equals("none")) {
                throw new IllegalArgumentException("--services: " + s + " is not one of " + SERVICES + " or none");
            }
        }
        List<String> timed = services.stream().filter(SERVICES::contains).toList();
        MeshHome home = MeshHome.detect();
        Path dir = stateDir != null ? stateDir : home.defaultStateDir().resolve("bench-startup");
        MeshSpec ms = new MeshSpec(model != null ? model : home.root().resolve("models/mixtral-tiny"), experts, 1, dir,
                jvm.heap(), jvm.timeout(), home, jvm.jvmOptions()).withKvCache();
        String loadBefore = LoadAverage.now();
        // row -> mode -> each run's seconds and CPU time
        Map<String, Map<Boolean, Sample[]>> seconds = new LinkedHashMap<>();
        for (boolean withAot : modes) {
            Map<String, String> env = new HashMap<>(System.getenv());
            if (!withAot) {
                env.put(AotCache.ENV, "off");
            } else if (!cachesReady(home, env, ms)) {
                err.println("bench startup: building the AOT caches first (one `up`, not measured)");
                err.flush();
                MeshLauncher.up(ms, err, true, env).close();
            }
            for (int r = 0; r < runs; r++) {
                err.printf("bench startup: run %d of %d, %s the AOT cache%n", r + 1, runs, withAot ? "with" : "without");
                err.flush();
                LauncherUp.Result up = LauncherUp.run(home.root().resolve("moemesh"), ms, env);
                // The launcher's services run in sessions of their own: a Ctrl-C of the bench reaches none of them,
                // so the hook stops the mesh (closing it removes the hook).
                try (RunningMesh mesh = RunningMesh.attach(ms.stateDir()).stopOnJvmExit()) {
                    ProcessCpu services = untilServing(mesh, up);
                    record(seconds, "`./moemesh up` (" + experts + " experts, router, kvcache, gateway)", withAot, r,
                            new Sample(up.seconds(), services.plus(up.launcherCpu())));
                    record(seconds, "of which the launcher JVM (until it starts the services; CPU: all of it)",
                            withAot, r, new Sample(up.secondsToLaunch(), up.launcherCpu()));
                    for (String name : timed) {
                        // "Alone" means on a quiet machine: the services just started still warm their kernels
                        // up once SERVING (MatMul.warmUp), which would otherwise compete with this start.
                        awaitQuiet(mesh, err);
                        mesh.kill(name);
                        Instant t = Instant.now();
                        mesh.restart(name, jvm.timeout());
                        double alone = secondsSince(t);
                        record(seconds, name.equals("expert-0") ? "expert-service" : name, withAot, r, new Sample(alone,
                                ProcessCpu.of(mesh.state().service(name).pid()).orElse(ProcessCpu.ZERO)));
                    }
                }
            }
        }
        out.printf("Cold start, process start → gRPC health SERVING, seconds: median (min–max) of %d run(s); model %s%n",
                runs, ms.model().getFileName());
        out.println();
        out.println("| | " + String.join(" | ", modes.stream().map(m -> m ? "with AOT cache" : "without").toList()) + " | "
                + String.join(" | ", modes.stream().map(m -> "CPU s " + (m ? "with" : "without")
                + ": total (C2 / C1 / GC / main / other)").toList()) + " |");
        out.println("|---|" + "---|".repeat(2 * modes.size()));
        seconds.forEach((row, byMode) -> out.println("| " + row + " | "
                + String.join(" | ", modes.stream().map(m -> Stats.of(wall(byMode.get(m))).cell()).toList()) + " | "
                + String.join(" | ", modes.stream().map(m -> cpuCell(byMode.get(m))).toList()) + " |"));
        out.println();
        out.println("CPU s: user + system seconds the process used until SERVING (for `up`, all services, each "
                + "sampled when `up` reported it SERVING, and the whole launcher JVM together), medians; C2 / C1: "
                + "the JIT compiler threads, GC: GC workers and the VM Thread, main: Spring's context (the launcher's: its main thread), other: the rest (threads already exited "
                + "included). `up` is the launcher script run as a user runs it, timed from its start until it "
                + "exits; the launcher's CPU is polled every " + LauncherUp.POLL_MS + " ms.");
        out.println("load average (1, 5, 15 min): " + loadBefore + " before, " + LoadAverage.now() + " after; "
                + Runtime.getRuntime().availableProcessors() + " cores");
        out.flush();
        return 0;
    }

    /**
     * The services' CPU time until SERVING, together: each sampled when {@code up} reported it SERVING, not once
     * {@code up} has exited, by when the services that reported earlier have spent more (their kernel warm-ups
     * among it).
     */
    private static ProcessCpu untilServing(RunningMesh mesh, LauncherUp.Result up) {
        ProcessCpu sum = ProcessCpu.ZERO;
        for (var s : mesh.state().services()) {
            ProcessCpu cpu = up.servicesAtServing().get(s.name());
            if (cpu == null) {
                throw new IllegalStateException("`moemesh up` printed no \"" + s.name() + " SERVING\" line the bench "
                        + "could read (or its process was gone): its CPU time until SERVING is unknown");
            }
            sum = sum.plus(cpu);
        }
        return sum;
    }

    /** The mesh's CPU use below this fraction of one core over {@link #QUIET_WINDOW_MS} counts as quiet. */
    static final double QUIET_CORES = 0.05;
    static final long QUIET_WINDOW_MS = 500;
    static final Duration QUIET_MAX_WAIT = Duration.ofSeconds(30);

    /** Waits (at most {@link #QUIET_MAX_WAIT}) until the mesh's processes together use under 5% of a core. */
    private static void awaitQuiet(RunningMesh mesh, PrintWriter err) {
        long deadline = System.nanoTime() + QUIET_MAX_WAIT.toNanos();
        double before = meshCpuSeconds(mesh);
        while (System.nanoTime() < deadline) {
            try {
                Thread.sleep(QUIET_WINDOW_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            double now = meshCpuSeconds(mesh);
            if (isQuiet(now - before, QUIET_WINDOW_MS)) {
                return;
            }
            before = now;
        }
        err.printf("bench startup: the mesh did not go quiet within %d s; measuring anyway%n",
                QUIET_MAX_WAIT.toSeconds());
    }

    static boolean isQuiet(double cpuSeconds, long windowMs) {
        return cpuSeconds < QUIET_CORES * windowMs / 1000.0;
    }

    private static double meshCpuSeconds(RunningMesh mesh) {
        return mesh.state().services().stream().mapToDouble(s -> ProcessCpu.of(s.pid()).map(ProcessCpu::total)
                .orElse(0.0)).sum();
    }

    /** One measurement: process start → SERVING, seconds, and the CPU time used until then. */
    record Sample(double seconds, ProcessCpu cpu) {
    }

    private void record(Map<String, Map<Boolean, Sample[]>> seconds, String row, boolean mode, int run, Sample s) {
        seconds.computeIfAbsent(row, k -> new LinkedHashMap<>()).computeIfAbsent(mode, k -> new Sample[runs])[run] = s;
    }

    private static double[] wall(Sample[] samples) {
        return Arrays.stream(samples).mapToDouble(Sample::seconds).toArray();
    }

    /** {@code 9.1 (8.7–9.6) (3.2 / 1.1 / 0.4 / 2.5 / 1.9)}: the total's median and spread, then each kind's median. */
    static String cpuCell(Sample[] samples) {
        List<ToDoubleFunction<ProcessCpu>> kinds = List.of(ProcessCpu::c2, ProcessCpu::c1, ProcessCpu::gc,
                ProcessCpu::main, ProcessCpu::other);
        return Stats.of(Arrays.stream(samples).mapToDouble(s -> s.cpu().total()).toArray()).cell() + " ("
                + String.join(" / ", kinds.stream().map(k -> Stats.fmt(Stats.of(Arrays.stream(samples)
                .mapToDouble(s -> k.applyAsDouble(s.cpu())).toArray()).median())).toList()) + ")";
    }

    /** Whether every jar of the mesh has its AOT cache already (else the first measured run would train). */
    private static boolean cachesReady(MeshHome home, Map<String, String> env, MeshSpec ms) {
        AotCache cache = AotCache.of(home, env).orElseThrow();
        return List.of(home.gatewayJar(), home.expertJar(), home.routerJar(), home.kvcacheJar()).stream()
                .allMatch(cache::ready);
    }

    private static double secondsSince(Instant t) {
        return Duration.between(t, Instant.now()).toMillis() / 1000.0;
    }
}
