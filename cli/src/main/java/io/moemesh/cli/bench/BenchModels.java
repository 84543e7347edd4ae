package io.moemesh.cli.bench;

import io.moemesh.model.synth.SynthArch;
import io.moemesh.model.synth.SynthDtype;
import io.moemesh.model.synth.SynthSpec;
import io.moemesh.model.synth.SyntheticCheckpoint;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The synthetic Mixtral shapes of the engine-speed issue, the same as llama.cpp was measured on (STACK.md):
 * S = hidden 512, intermediate 1408, 8 heads / 2 KV heads; M = hidden 1024, intermediate 2816, 16 / 4; both 8
 * layers, 8 experts, top-2, vocab 512. Written once into a cache directory and reused while the spec is equal.
 */
final class BenchModels {
    private static final String SPEC_FILE = "bench-spec.txt";

    private BenchModels() {
    }

    static SynthSpec spec(String name, SynthDtype dtype) {
        SynthSpec s = switch (name.toUpperCase(Locale.ROOT)) {
            case "S" -> SynthSpec.of(SynthArch.MIXTRAL, 512, 1408, 8, 8, 2, 8, 2, 512);
            case "M" -> SynthSpec.of(SynthArch.MIXTRAL, 1024, 2816, 8, 8, 2, 16, 4, 512);
            default -> throw new IllegalArgumentException("unknown bench model " + name + ": use S or M");
        };
        return s.withDtype(dtype);
    }

    /** The directory of the model, written first if missing or made from another spec. */
    static Path ensure(Path cache, String name, SynthDtype dtype, PrintWriter log) throws IOException {
        SynthSpec spec = spec(name, dtype);
        Path dir = cache.resolve(name.toUpperCase(Locale.ROOT) + "-" + dtype.cliName());
        String want = String.join(" ", spec.toCliArgs());
        Path marker = dir.resolve(SPEC_FILE);
        if (Files.isRegularFile(marker) && Files.readString(marker).strip().equals(want)) {
            return dir;
        }
        log.printf("bench: writing model %s %s into %s%n", name, dtype.cliName(), dir);
        log.flush();
        SyntheticCheckpoint.write(spec, dir);
        Files.writeString(marker, want + "\n");
        return dir;
    }

    /** {@code --models-dir}, else {@code $moemesh.home/target/bench-models}, else {@code ./target/bench-models}. */
    static Path defaultCache() {
        String home = System.getProperty("moemesh.home");
        return (home != null ? Path.of(home) : Path.of("")).resolve("target").resolve("bench-models").toAbsolutePath();
    }
}
