package io.moemesh.expert.backend;

import java.util.List;

/** Backends by configured name. */
public final class ExpertBackends {
    public static final List<String> NAMES = List.of("cpu", "noop");

    private ExpertBackends() {
    }

    public static ExpertBackend create(String name, ExpertModel model) {
        return create(name, model, KernelThreads.EVERY_CORE);
    }

    /** @param kernelThreads the cpu backend's kernel threads per batch, by its size */
    public static ExpertBackend create(String name, ExpertModel model, KernelThreads kernelThreads) {
        return switch (name.strip().toLowerCase(java.util.Locale.ROOT)) {
            case "cpu" -> new CpuExpertBackend(model, kernelThreads);
            case "noop" -> new NoOpExpertBackend(model.hiddenSize());
            default -> throw new IllegalArgumentException("backend \"" + name + "\" is unknown (known: " + NAMES + ")");
        };
    }
}
