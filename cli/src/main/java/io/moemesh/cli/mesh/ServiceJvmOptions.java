package io.moemesh.cli.mesh;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Option;

/**
 * {@code --heap}, {@code --jvm-option}, {@code --timeout}: how a command starts its service JVMs. The heap
 * default is the command's (the demo's tiny model needs less than a real one); picocli shows the field's
 * initial value as the default. {@link #startupFlags} are the per-service JVM flags that cut start-up CPU.
 */
public final class ServiceJvmOptions {
    /**
     * C2 (tier 4) compiles a method only after 10× HotSpot's default invocation and loop counts (defaults 5000 /
     * 600 / 15000 / 40000, JDK 25 {@code compiler_globals.hpp}). Start-up code (Spring's bean graph, configuration
     * binding, auto-configuration conditions) runs hot enough for C2 by the default counts but only for a few
     * seconds, so those compilations are CPU spent on code that never runs again: measured on the router-service,
     * C2 compiler threads 2.0–2.4 of its 7.0–7.8 CPU s to SERVING with the defaults, about 1 with these. Code that
     * stays hot while serving reaches C2 all the same, after 10× the calls or loop iterations (milliseconds of a
     * loop; a method called once per request after 50,000 requests instead of 5,000); the steady state is
     * unchanged. Only for the services without Vector API kernels: the gateway and the expert-service warm their
     * kernels up with a fixed number of calls sized for the default counts (MatMul.warmUp), and their results are
     * bit-stable only once C2 compiled them.
     */
    static final List<String> LATE_C2 = List.of("-XX:Tier4InvocationThreshold=50000",
            "-XX:Tier4MinInvocationThreshold=6000", "-XX:Tier4CompileThreshold=150000",
            "-XX:Tier4BackEdgeThreshold=400000");

    /**
     * The JVM flags that make {@code service} (its mesh name: gateway, expert-N, router, kvcache) start with less CPU,
     * after the flags every service gets (MeshLauncher.SERVICE_JVM_FLAGS): {@link #LATE_C2} for the router and the
     * kvcache-service, nothing for the gateway and the expert-services (docs/performance.md "Cold start"). The
     * images' entry points (docker/Dockerfile) use the same flags.
     */
    public static List<String> startupFlags(String service) {
        return switch (service) {
            case MeshLauncher.ROUTER, MeshLauncher.KVCACHE -> LATE_C2;
            default -> List.of();
        };
    }

    @Option(names = "--heap", paramLabel = "SIZE", description = "-Xmx of every service JVM (default ${DEFAULT-VALUE}).")
    String heap;

    @Option(names = "--jvm-option", paramLabel = "OPTION",
            description = "An extra JVM option for every service, e.g. --jvm-option=-XX:ActiveProcessorCount=1 (repeatable).")
    List<String> jvmOptions = new ArrayList<>();

    @Option(names = "--timeout", defaultValue = "180", paramLabel = "SECONDS",
            description = "How long the services may take to become healthy (default ${DEFAULT-VALUE}).")
    int timeoutSeconds;

    public ServiceJvmOptions(String defaultHeap) {
        this.heap = defaultHeap;
    }

    public String heap() {
        return heap;
    }

    public List<String> jvmOptions() {
        return List.copyOf(jvmOptions);
    }

    public Duration timeout() {
        return Duration.ofSeconds(timeoutSeconds);
    }
}
