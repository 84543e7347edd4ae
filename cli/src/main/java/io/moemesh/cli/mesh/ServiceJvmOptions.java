package io.moemesh.cli.mesh;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Option;

/**
 * {@code --heap}, {@code --jvm-option}, {@code --timeout}: how a command starts its service JVMs. The heap
 * default is the command's (the demo's tiny model needs less than a real one); picocli shows the field's
 * initial value as the default.
 */
public final class ServiceJvmOptions {
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
