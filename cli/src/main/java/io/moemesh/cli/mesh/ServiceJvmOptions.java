package io.moemesh.cli.mesh;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
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
     * unchanged.
     */
    static final List<String> LATE_C2 = List.of("-XX:Tier4InvocationThreshold=50000",
            "-XX:Tier4MinInvocationThreshold=6000", "-XX:Tier4CompileThreshold=150000",
            "-XX:Tier4BackEdgeThreshold=400000");

    /**
     * The packages of the gateway's and the expert-service's serving path: our code (the engine, the Vector API
     * kernels, dispatch), gRPC with its shaded Netty, protobuf, the Vector API, Tomcat and Spring MVC (every SSE
     * event of a stream), Jackson, metrics, tracing and circuit breakers, and the JDK's buffers, concurrency and
     * memory access under them ({@code java.nio}, {@code java.util.concurrent}, {@code jdk.internal.misc},
     * {@code sun.nio}: without these, {@code bench mesh --decode} at 32 sequences used 13% more CPU per token, 10.82
     * against 9.58 ms, with them 9.12; the rest of the JDK, {@code java.lang.invoke} and the class-file API above
     * all, is start-up work, and exempting all of {@code java.*} gave the start-up CPU back, 11.6 s for the
     * expert-service instead of 9.4). Under {@link #LATE_C2} they keep
     * HotSpot's own counts: these services call their hot methods per layer and per token, and the kernel
     * warm-up (MatMul.warmUp) makes a fixed number of calls sized for the default counts, after which the kernels
     * are C2 code (their bits are the same in every tier, only their speed is not). Everything else (Spring's container, class-file
     * generation, reflection, configuration binding: the start-up code) gets C2 ten times later.
     */
    static final List<String> SERVING_PATH_PACKAGES = List.of("io.moemesh", "io.grpc", "com.google.protobuf",
            "jdk.incubator.vector", "org.apache.coyote", "org.apache.tomcat", "org.springframework.web",
            "com.fasterxml.jackson", "io.micrometer", "io.opentelemetry", "io.github.resilience4j", "java.nio",
            "java.util.concurrent", "jdk.internal.misc", "sun.nio");

    /**
     * HotSpot CompileCommands (the values of {@code -XX:CompileCommand}, or the lines of a
     * {@code -XX:CompileCommandFile}, as docker/jit-serving-path.compilecommands holds them for the images) that
     * scale the compile thresholds of {@link #SERVING_PATH_PACKAGES} by 1/10, undoing {@link #LATE_C2} there
     * (a per-method {@code CompileThresholdScaling} multiplies every tier's thresholds, JDK 25
     * {@code compilationPolicy.cpp}); {@code quiet} keeps HotSpot from printing each command at start.
     */
    static final List<String> SERVING_PATH_COMMANDS = Stream.concat(Stream.of("quiet"),
            SERVING_PATH_PACKAGES.stream().map(p -> "CompileThresholdScaling," + p + ".*::*,0.1")).toList();

    /** {@link #LATE_C2} outside the serving path: the gateway's and the expert-service's start-up flags. */
    static final List<String> LATE_C2_OFF_SERVING_PATH = Stream.concat(LATE_C2.stream(),
            SERVING_PATH_COMMANDS.stream().map(c -> "-XX:CompileCommand=" + c)).toList();

    /**
     * The JVM flags that make {@code service} (its mesh name: gateway, expert-N, router, kvcache) start with less CPU,
     * after the flags every service gets (MeshLauncher.SERVICE_JVM_FLAGS): {@link #LATE_C2} for the router and the
     * kvcache-service, {@link #LATE_C2_OFF_SERVING_PATH} for the gateway and the expert-services (docs/performance.md
     * "Cold start"). The images' entry points and training runs (docker/Dockerfile) use the same flags.
     */
    public static List<String> startupFlags(String service) {
        return switch (service) {
            case MeshLauncher.ROUTER, MeshLauncher.KVCACHE -> LATE_C2;
            default -> LATE_C2_OFF_SERVING_PATH;
        };
    }

    // The router and the kvcache-service size their own heaps (MeshLauncher.ROUTER_HEAP, KvCacheSettings.heap).
    @Option(names = "--heap", paramLabel = "SIZE", description = "-Xmx of the gateway's and every expert-service's JVM "
            + "(default ${DEFAULT-VALUE}); the router-service gets 256m, the kvcache-service its DRAM tier + 256 MiB.")
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

    /** @throws IllegalArgumentException when {@code --timeout} is not positive (bad input, before any JVM starts) */
    public Duration timeout() {
        if (timeoutSeconds < 1) {
            throw new IllegalArgumentException("--timeout must be at least 1 second, got " + timeoutSeconds);
        }
        return Duration.ofSeconds(timeoutSeconds);
    }
}
