package io.moemesh.model.synth;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.safetensors.SafetensorsWriter;
import io.moemesh.model.safetensors.SafetensorsWriter.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import tools.jackson.core.JacksonException;
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
 */
public final class SyntheticCheckpoint {

    /** The command a README names when the caller gives none. */
    public static final String DEFAULT_COMMAND = "moemesh synth";
    public static final String MODEL_FILE = "model.safetensors";
    /** A sharded checkpoint's index: not written, and removed when the output directory holds one. */
    public static final String INDEX_FILE = "model.safetensors.index.json";

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
     * Writes the checkpoint of {@code spec} into {@code outDir} (created if needed; existing files replaced, and a
     * sharded checkpoint there, its {@value #INDEX_FILE} and the shards it lists, removed once the new weights are
     * written: see {@link #removeShardedWeights}).
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
        List<Tensor> tensors = tensors(spec);
        Files.createDirectories(outDir);
        try (InputStream in = tokenizerStream()) {
            Files.write(outDir.resolve("tokenizer.json"), in.readAllBytes());
        }
        writeJson(outDir.resolve("config.json"), SynthConfig.config(spec));
        writeJson(outDir.resolve("generation_config.json"), SynthConfig.generationConfig());
        Files.writeString(outDir.resolve("README.md"), readme(spec, tensors, command));
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors());
        try (SynthValues values = new SynthValues(spec.seed(), tensors, threads)) {
            SafetensorsWriter.write(outDir.resolve(MODEL_FILE), tensors, values);
        }
        removeShardedWeights(outDir);
    }

    /**
     * Removes the index of a sharded checkpoint the directory held, and the shards it lists. Left beside the new
     * {@value #MODEL_FILE} they are a second set of weights, which a loader that prefers the index (this project's
     * did) or reads every *.safetensors file serves instead of, or with, the new ones. Only names of .safetensors
     * files in the directory itself are removed, never {@value #MODEL_FILE}; an index that does not parse names none.
     * Last, so a write that fails leaves the old checkpoint whole.
     */
    private static void removeShardedWeights(Path outDir) throws IOException {
        Path index = outDir.resolve(INDEX_FILE);
        if (!Files.isRegularFile(index)) {
            return;
        }
        Set<String> shards = new TreeSet<>();
        try {
            JsonNode root = JSON.readTree(index.toFile());
            for (JsonNode shard : root == null ? List.<JsonNode>of() : root.path("weight_map").values()) {
                String name = shard.isString() ? shard.stringValue() : "";
                if (name.endsWith(".safetensors") && !name.contains("/") && !name.contains("\\")
                        && !name.equals(MODEL_FILE)) {
                    shards.add(name);
                }
            }
        } catch (JacksonException e) {
            // Not JSON: it names no shard to remove; it goes itself.
        }
        Files.delete(index);
        for (String shard : shards) {
            Files.deleteIfExists(outDir.resolve(shard));
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

    private static void writeJson(Path file, Map<String, Object> value) throws IOException {
        Files.writeString(file, PRETTY.writeValueAsString(value) + "\n");
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
