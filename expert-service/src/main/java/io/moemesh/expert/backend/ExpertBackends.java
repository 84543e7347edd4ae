package io.moemesh.expert.backend;

import io.moemesh.model.kernel.MatMul;
import java.util.List;

/** Backends by configured name. */
public final class ExpertBackends {
    public static final List<String> NAMES = List.of("cpu", "noop");

    private ExpertBackends() {
    }

    public static ExpertBackend create(String name, ExpertModel model) {
        return switch (name.strip().toLowerCase(java.util.Locale.ROOT)) {
            case "cpu" -> {
                // Kernels compiled early make the first batches fast (MatMul.warmUp); ExpertServiceApplication started
                // that as the JVM started, this covers other callers. Not awaited: the bits do not depend on it.
                MatMul.warmUpInBackground();
                yield new CpuExpertBackend(model);
            }
            case "noop" -> new NoOpExpertBackend(model.hiddenSize());
            default -> throw new IllegalArgumentException("backend \"" + name + "\" is unknown (known: " + NAMES + ")");
        };
    }
}
