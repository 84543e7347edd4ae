package io.moemesh.model.synth;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.safetensors.SafetensorsWriter;
import io.moemesh.model.safetensors.SafetensorsWriter.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;
import tools.jackson.core.util.DefaultPrettyPrinter;
import tools.jackson.core.util.Separators;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectWriter;
import tools.jackson.databind.json.JsonMapper;

/**
 * Writes a Hugging Face model directory with random weights in the exact tensor layout of a real MoE architecture:
 * {@code config.json}, {@code generation_config.json}, {@code tokenizer.json} (the bundled byte-level BPE of the
 * tiny test models), {@code model.safetensors} and a README saying the weights are random. The safetensors file is
 * streamed, so checkpoints of many GB are written without holding them in memory, and the bytes are a pure function
 * of the spec (see {@link SynthValues}).
 *
 * <p>It writes into a new or empty directory, or over its own earlier output; a directory holding weights it does
 * not write (a sharded checkpoint's index or shards) is another checkpoint, and is refused: replacing its
 * config.json and tokenizer.json would break it, and deleting its weights would lose what may have been a long
 * download.
 */
public final class SyntheticCheckpoint {

    /** The command a README names when the caller gives none. */
    public static final String DEFAULT_COMMAND = "moemesh synth";
    public static final String MODEL_FILE = "model.safetensors";
    /** A sharded checkpoint's index: never written; an output directory that holds one is refused. */
    public static final String INDEX_FILE = "model.safetensors.index.json";
    /** Suffix of the files staged beside their final names until the weights are written. */
    private static final String PARTIAL = ".partial";

    private static final String TOKENIZER_RESOURCE = "tokenizer.json";
    private static final JsonMapper JSON = JsonMapper.builder().build();
    /** Indented like transformers' JSON files: {@code "key": value}. */
    private static final ObjectWriter PRETTY = JSON.writer().with(new DefaultPrettyPrinter(Separators.createDefaultInstance()
            .withObjectNameValueSpacing(Separators.Spacing.AFTER)
            .withArrayEmptySeparator("")
            .withObjectEmptySeparator("")));

    private SyntheticCheckpoint() {
    }

    /**
     * Writes the checkpoint of {@code spec} into {@code outDir} (created if needed; the files of an earlier write
     * replaced). An {@code outDir} holding weights synth does not write is refused before anything is written
     * ({@link #foreignWeights}): an {@link IllegalArgumentException} naming the directory and the file. A write
     * that fails before its files are moved into place (while writing the weights, nearly all of its time) leaves
     * what the directory held as it was: config.json, tokenizer.json and the README wait beside their names until
     * the weights are complete.
     */
    public static void write(SynthSpec spec, Path outDir) throws IOException {
        List<String> command = new ArrayList<>(List.of(DEFAULT_COMMAND));
        command.addAll(spec.toCliArgs());
        command.addAll(List.of("--out", outDir.toString()));
        write(spec, outDir, String.join(" ", command));
    }

    /** As {@link #write(SynthSpec, Path)}, naming {@code command} in the README as the command that produced it. */
    public static void write(SynthSpec spec, Path outDir, String command) throws IOException {
        int tokenizerVocab = tokenizerVocabSize();
        if (spec.vocab() < tokenizerVocab) {
            throw new ModelFormatException("--vocab " + spec.vocab() + " is smaller than the bundled tokenizer's "
                    + tokenizerVocab + " ids: use --vocab " + tokenizerVocab + " or more");
        }
        Optional<String> foreign = foreignWeights(outDir);
        if (foreign.isPresent()) {
            throw new IllegalArgumentException(outDir + " " + foreign.get());
        }
        List<Tensor> tensors = tensors(spec);
        Map<String, byte[]> small = new LinkedHashMap<>();
        try (InputStream in = tokenizerStream()) {
            small.put("tokenizer.json", in.readAllBytes());
        }
        small.put("config.json", json(SynthConfig.config(spec)));
        small.put("generation_config.json", json(SynthConfig.generationConfig()));
        small.put("README.md", readme(spec, tensors, command).getBytes(StandardCharsets.UTF_8));
        Files.createDirectories(outDir);
        List<Path> staged = new ArrayList<>();
        try {
            for (Map.Entry<String, byte[]> f : small.entrySet()) {
                Path partial = outDir.resolve(f.getKey() + PARTIAL);
                staged.add(partial);
                Files.write(partial, f.getValue());
            }
            int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
            try (SynthValues values = new SynthValues(spec.seed(), tensors, threads)) {
                SafetensorsWriter.write(outDir.resolve(MODEL_FILE), tensors, values); // itself staged, then moved
            }
            for (String name : small.keySet()) {
                move(outDir.resolve(name + PARTIAL), outDir.resolve(name));
            }
        } catch (IOException | RuntimeException e) {
            for (Path partial : staged) {
                try {
                    Files.deleteIfExists(partial);
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    /**
     * Why synth refuses {@code outDir}, or empty: a {@value #INDEX_FILE}, or a {@code *.safetensors} file other than
     * {@value #MODEL_FILE}, in it. Synth writes neither, so they belong to another checkpoint (a download, a typo in
     * the path), whose config.json and tokenizer.json a write would replace. Its own earlier output, which holds
     * {@value #MODEL_FILE} only, is not refused. Empty too when {@code outDir} is not a directory.
     */
    public static Optional<String> foreignWeights(Path outDir) throws IOException {
        if (!Files.isDirectory(outDir)) {
            return Optional.empty();
        }
        List<String> foreign;
        try (Stream<Path> files = Files.list(outDir)) {
            foreign = files.map(f -> f.getFileName().toString())
                    .filter(n -> n.equals(INDEX_FILE) || n.endsWith(".safetensors") && !n.equals(MODEL_FILE))
                    .sorted((a, b) -> a.equals(INDEX_FILE) ? -1 : b.equals(INDEX_FILE) ? 1 : a.compareTo(b))
                    .toList();
        }
        if (foreign.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of("holds " + foreign.getFirst() + (foreign.size() > 1 ? " and " + (foreign.size() - 1)
                + " more weight file" + (foreign.size() > 2 ? "s" : "") : "") + ", which synth does not write: another "
                + "checkpoint's weights, whose config.json and tokenizer.json synth would replace; give a new or "
                + "empty directory");
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** The tensors {@code model.safetensors} holds for {@code spec}, in file order. */
    public static List<Tensor> tensors(SynthSpec spec) {
        return SynthLayout.tensors(spec);
    }

    /** Ids of the bundled tokenizer (model vocab and added tokens): the smallest allowed {@code --vocab}. */
    public static int tokenizerVocabSize() {
        return TokenizerVocab.SIZE;
    }

    private static final class TokenizerVocab {
        static final int SIZE = load();

        private static int load() {
            try (InputStream in = tokenizerStream()) {
                JsonNode root = JSON.readTree(in);
                int max = -1;
                for (JsonNode id : root.path("model").path("vocab")) {
                    max = Math.max(max, id.asInt());
                }
                for (JsonNode token : root.path("added_tokens")) {
                    max = Math.max(max, token.path("id").asInt());
                }
                return max + 1;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    private static InputStream tokenizerStream() throws IOException {
        InputStream in = SyntheticCheckpoint.class.getResourceAsStream(TOKENIZER_RESOURCE);
        if (in == null) {
            throw new IOException("classpath resource io/moemesh/model/synth/" + TOKENIZER_RESOURCE + " is missing");
        }
        return in;
    }

    private static byte[] json(Map<String, Object> value) {
        return (PRETTY.writeValueAsString(value) + "\n").getBytes(StandardCharsets.UTF_8);
    }

    private static String readme(SynthSpec spec, List<Tensor> tensors, String command) {
        long parameters = tensors.stream().mapToLong(Tensor::elements).sum();
        long bytes = tensors.stream().mapToLong(Tensor::byteSize).sum();
        return """
                # Synthetic %s checkpoint — random weights

                This model has **random weights** and produces meaningless text. It exists to exercise loading,
                sharding, expert routing and throughput at a chosen size; do not use it for anything else.

                - architecture: `%s` (`%s`), %d layers, %d experts (top-%d), hidden %d, expert intermediate %d
                - attention: %d heads, %d KV heads, head dim %d; vocab %d (tokenizer: byte-level BPE, %d ids)
                - %,d parameters in %d tensors, %s (%,d bytes of tensor data)
                - values: normal(0, 0.1); RMSNorm weights 1 + normal(0, 0.1); seed %d

                Produced by:

                ```
                %s
                ```
                """.formatted(spec.arch().hfClass(), spec.arch().modelType(), spec.arch().hfClass(), spec.layers(),
                spec.experts(), spec.topK(), spec.hidden(), spec.intermediate(), spec.heads(), spec.kvHeads(),
                spec.effectiveHeadDim(), spec.vocab(), tokenizerVocabSize(), parameters, tensors.size(),
                spec.dtype().configName(), bytes, spec.seed(), command);
    }
}
