package io.moemesh.model.golden;

import java.nio.file.Files;
import java.nio.file.Path;

/** Locates the models bundled in the repository's {@code models/} folder from any module's working directory. */
public final class TestModels {
    public static final String MIXTRAL = "mixtral-tiny";
    public static final String MIXTRAL_BF16 = "mixtral-tiny-bf16";
    public static final String QWEN2_MOE = "qwen2moe-tiny";

    private TestModels() {
    }

    public static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null) {
            if (Files.isDirectory(p.resolve("models").resolve(MIXTRAL)) && Files.exists(p.resolve("mvnw"))) {
                return p;
            }
            p = p.getParent();
        }
        throw new IllegalStateException("cannot find the repository's models/ folder above " + Path.of("").toAbsolutePath());
    }

    public static Path dir(String name) {
        return repoRoot().resolve("models").resolve(name);
    }
}
