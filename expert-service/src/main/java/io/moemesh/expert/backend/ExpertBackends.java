package io.moemesh.expert.backend;

import java.util.List;

/** Backends by configured name. */
public final class ExpertBackends {
    public static final List<String> NAMES = List.of("cpu", "noop");

    private ExpertBackends() {
    }

    public static ExpertBackend create(String name, ExpertModel model) {
        return switch (name.strip().toLowerCase(java.util.Locale.ROOT)) {
            // Not waiting for MatMul.warmUp (ExpertServiceApplication starts it on its own thread): it buys speed, not
            // correctness (the kernels give the same bits compiled or not), and waiting for it held readiness seconds.
            case "cpu" -> new CpuExpertBackend(model);
            case "noop" -> new NoOpExpertBackend(model.hiddenSize());
            default -> throw new IllegalArgumentException("backend \"" + name + "\" is unknown (known: " + NAMES + ")");
        };
    }
}
