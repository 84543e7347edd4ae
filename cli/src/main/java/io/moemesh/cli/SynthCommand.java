package io.moemesh.cli;

import io.moemesh.model.synth.SynthArch;
import io.moemesh.model.synth.SynthDtype;
import io.moemesh.model.synth.SynthSpec;
import io.moemesh.model.synth.SyntheticCheckpoint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

@Command(name = "synth", mixinStandardHelpOptions = true,
        description = "Write a random-weight checkpoint of an MoE architecture (published tensor names, the tiny "
                + "models' tokenizer) for tests, benchmarks and capacity planning.")
final class SynthCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--arch", required = true, description = "mixtral, qwen2_moe or olmoe.")
    String arch;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output model directory.")
    Path out;

    @Option(names = "--hidden", required = true, description = "hidden_size.")
    int hidden;

    @Option(names = "--intermediate", required = true, description = "Inner size of one routed expert.")
    int intermediate;

    @Option(names = "--layers", required = true, description = "num_hidden_layers.")
    int layers;

    @Option(names = "--experts", required = true, description = "Routed experts per layer.")
    int experts;

    @Option(names = "--top-k", required = true, description = "num_experts_per_tok.")
    int topK;

    @Option(names = "--heads", required = true, description = "num_attention_heads.")
    int heads;

    @Option(names = "--kv-heads", required = true, description = "num_key_value_heads.")
    int kvHeads;

    @Option(names = "--vocab", required = true, description = "vocab_size (≥ 512, the bundled tokenizer's).")
    int vocab;

    @Option(names = "--head-dim", description = "head_dim (default hidden / heads).")
    Integer headDim;

    @Option(names = "--shared-intermediate", description = "qwen2_moe: shared expert size (default --intermediate).")
    Integer sharedIntermediate;

    @Option(names = "--dtype", defaultValue = "f32", description = "f32 or bf16 (default ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--max-position", defaultValue = "4096", description = "max_position_embeddings (default ${DEFAULT-VALUE}).")
    int maxPosition;

    @Option(names = "--seed", defaultValue = "0", description = "Weights are a pure function of the seed.")
    long seed;

    /** The files {@link SyntheticCheckpoint#write} writes into the output directory. */
    static final List<String> CHECKPOINT_FILES = List.of("tokenizer.json", "config.json", "generation_config.json",
            "README.md", SyntheticCheckpoint.MODEL_FILE);

    @Override
    public Integer call() throws IOException {
        SynthSpec s = new SynthSpec(SynthArch.parse(arch), hidden, intermediate, layers, experts, topK, heads, kvHeads,
                vocab, headDim == null ? OptionalInt.empty() : OptionalInt.of(headDim),
                sharedIntermediate == null ? OptionalInt.empty() : OptionalInt.of(sharedIntermediate),
                SynthDtype.parse(dtype), maxPosition, seed);
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw new IllegalArgumentException("--out " + out + " exists and is not a directory");
        }
        // Another checkpoint's directory (a download, a mistyped path): refused before anything is written.
        Optional<String> foreign = SyntheticCheckpoint.foreignWeights(out);
        if (foreign.isPresent()) {
            throw new IllegalArgumentException("--out " + out + " " + foreign.get());
        }
        checkSize(s, out);
        long t0 = System.nanoTime();
        write(s, out, "moemesh synth " + String.join(" ", spec.commandLine().getParseResult().originalArgs()));
        spec.commandLine().getErr().printf("moemesh synth: wrote %s in %d ms%n", out, (System.nanoTime() - t0) / 1_000_000);
        spec.commandLine().getOut().println(out.toAbsolutePath());
        return 0;
    }

    /**
     * Refuses, before anything is written, sizes whose checkpoint overflows, lists more tensors than a safetensors
     * header may hold, or does not fit in the space the output's file system has free.
     */
    static void checkSize(SynthSpec s, Path out) throws IOException {
        SynthSize size;
        try {
            size = SynthSize.of(s);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(SynthSize.largestOption(s)
                    + ": the checkpoint would be larger than 2^63 bytes; give smaller sizes");
        }
        if (size.headerTooLong()) {
            throw new IllegalArgumentException("--experts " + s.experts() + " and --layers " + s.layers() + " make "
                    + size.tensors() + " tensors, more than a safetensors header may list (its readers' limit is "
                    + SynthSize.MAX_HEADER_BYTES + " bytes)");
        }
        long needed;
        try {
            needed = size.diskBytes();
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(SynthSize.largestOption(s)
                    + ": the checkpoint would be larger than 2^63 bytes; give smaller sizes");
        }
        Path existing = out.toAbsolutePath();
        while (existing != null && !Files.isDirectory(existing)) {
            existing = existing.getParent();
        }
        if (existing == null) {
            return; // no ancestor to ask: creating it fails, naming it
        }
        long free = Files.getFileStore(existing).getUsableSpace();
        if (needed > free) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "--out %s: the checkpoint needs %,d bytes "
                    + "(%.1f GiB), more than the %,d bytes (%.1f GiB) free on its file system", out, needed,
                    needed / (double) (1L << 30), free, free / (double) (1L << 30)));
        }
    }

    /**
     * Writes the checkpoint. A failure part way (a full disk, an I/O error) while writing the weights leaves a
     * checkpoint already in {@code out} as it was ({@link SyntheticCheckpoint#write} moves its files into place only
     * once the weights are complete) and removes {@code out} if it made it and it is empty; one while moving them
     * into place removes every checkpoint file, so no config.json is left without its weights.
     */
    static void write(SynthSpec s, Path out, String command) throws IOException {
        boolean outExisted = Files.isDirectory(out);
        Map<String, FileTime> before = new HashMap<>();
        for (String f : CHECKPOINT_FILES) {
            Path p = out.resolve(f);
            if (Files.exists(p)) {
                before.put(f, Files.getLastModifiedTime(p));
            }
        }
        try {
            SyntheticCheckpoint.write(s, out, command);
        } catch (IOException | RuntimeException e) {
            removeWritten(out, before, outExisted);
            if (e instanceof IOException io) {
                throw new UncheckedIOException("--out " + out + ": writing the checkpoint failed ("
                        + (io.getMessage() == null ? io.getClass().getSimpleName() : io.getMessage())
                        + "); removed the files written", io);
            }
            throw e;
        }
    }

    /**
     * Once any checkpoint file is new or its time changed since the run started, deletes every checkpoint file:
     * what is left is neither the old checkpoint nor the new. None changed: the old one is whole and stays.
     */
    private static void removeWritten(Path out, Map<String, FileTime> before, boolean outExisted) {
        boolean changed = false;
        for (String f : CHECKPOINT_FILES) {
            Path p = out.resolve(f);
            try {
                changed |= Files.exists(p) && (!before.containsKey(f)
                        || !before.get(f).equals(Files.getLastModifiedTime(p)));
            } catch (IOException e) {
                changed = true; // cannot tell: treat it as written
            }
        }
        for (String f : changed ? CHECKPOINT_FILES : List.<String>of()) {
            try {
                Files.deleteIfExists(out.resolve(f));
            } catch (IOException ignored) {
                // what cannot be deleted stays; the error already names the directory
            }
        }
        if (!outExisted) {
            try {
                Files.deleteIfExists(out);
            } catch (IOException ignored) {
                // not empty (the caller's own files): it stays
            }
        }
    }
}
