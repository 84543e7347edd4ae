package io.moemesh.expert.backend;

import java.util.List;

/** Backends by configured name. */
public final class ExpertBackends {
    public static final List<String> NAMES = List.of("cpu", "noop");

    private ExpertBackends() {
    }

    public static ExpertBackend create(String name, ExpertModel model) {
        return create(name, model, 0);
    }

    /** @param largeBatchKernelThreads the cpu backend's bound for batches of many tokens (0 = every core) */
    public static ExpertBackend create(String name, ExpertModel model, int largeBatchKernelThreads) {
        return switch (name.strip().toLowerCase(java.util.Locale.ROOT)) {
            case "cpu" -> new CpuExpertBackend(model, largeBatchKernelThreads);
            case "noop" -> new NoOpExpertBackend(model.hiddenSize());
            default -> throw new IllegalArgumentException("backend \"" + name + "\" is unknown (known: " + NAMES + ")");
        };
    }
}
