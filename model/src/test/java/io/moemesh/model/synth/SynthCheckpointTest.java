package io.moemesh.model.synth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.offset;

import io.moemesh.model.safetensors.SafetensorsWriter;
import io.moemesh.model.safetensors.WrittenSafetensors;
import io.moemesh.model.safetensors.WrittenSafetensors.Entry;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

class SynthCheckpointTest {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    Path dir;

    /**
     * Tiny sizes with head_dim 8, GQA ratio 4, 16 experts top-4. Mixtral and Qwen2-MoE use an explicit head_dim that
     * differs from hidden / heads (48 / 8 = 6); OLMoE requires head_dim == hidden / heads, so it uses hidden 64.
     */
    static SynthSpec tiny(SynthArch arch) {
        int hidden = arch == SynthArch.OLMOE ? 64 : 48;
        return SynthSpec.of(arch, hidden, 24, 2, 16, 4, 8, 2, 520).withHeadDim(8).withSeed(7);
    }

    @ParameterizedTest
    @EnumSource(SynthArch.class)
    void write_eachArch_hasEveryPublishedTensorWithItsShapeAndDtype(SynthArch arch) throws IOException {
        SynthSpec spec = tiny(arch);
        SyntheticCheckpoint.write(spec, dir);

        WrittenSafetensors st = WrittenSafetensors.open(dir.resolve("model.safetensors"));
        Map<String, List<Long>> expected = expectedShapes(spec);
        assertThat(st.entries().keySet()).containsExactlyInAnyOrderElementsOf(expected.keySet());
        expected.forEach((name, shape) -> {
            Entry e = st.entries().get(name);
            assertThat(e.shape()).as(name).isEqualTo(shape);
            assertThat(e.dtype()).as(name).isEqualTo("F32");
        });
        assertThat(st.header().get("__metadata__").get("format").asString()).isEqualTo("pt");
        assertThat(SyntheticCheckpoint.tensors(spec)).extracting(SafetensorsWriter.Tensor::name)
                .containsExactlyElementsOf(st.entries().keySet());
    }

    @ParameterizedTest
    @CsvSource({"mixtral-tiny, mixtral, 96, 8, 2, 96", "qwen2moe-tiny, qwen2-moe, 48, 12, 3, 96"})
    void write_sizesOfABundledTinyModel_sameTensorNamesShapesAndConfigValues(String model, String arch, int inter,
            int experts, int topK, int shared) throws IOException {
        SynthSpec spec = SynthSpec.of(SynthArch.parse(arch), 64, inter, 4, experts, topK, 4, 2, 512);
        if (spec.arch() == SynthArch.QWEN2_MOE) {
            spec = spec.withSharedIntermediate(shared);
        }
        SyntheticCheckpoint.write(spec, dir);

        WrittenSafetensors real = WrittenSafetensors.open(repoFile("models/" + model + "/model.safetensors"));
        WrittenSafetensors synth = WrittenSafetensors.open(dir.resolve("model.safetensors"));
        assertThat(synth.entries().keySet()).containsExactlyInAnyOrderElementsOf(real.entries().keySet());
        real.entries().forEach((name, e) -> assertThat(synth.entries().get(name).shape()).as(name).isEqualTo(e.shape()));
        JsonNode realConfig = JSON.readTree(repoFile("models/" + model + "/config.json").toFile());
        for (String key : List.of("model_type", "hidden_size", "num_attention_heads", "num_key_value_heads",
                "num_experts_per_tok", "vocab_size", "rms_norm_eps", "rope_parameters", "bos_token_id", "eos_token_id",
                "tie_word_embeddings", "dtype", "num_local_experts", "num_experts", "moe_intermediate_size",
                "shared_expert_intermediate_size", "norm_topk_prob", "qkv_bias", "decoder_sparse_step",
                "mlp_only_layers", "use_sliding_window")) {
            assertThat(config().get(key)).as(key).isEqualTo(realConfig.get(key));
        }
    }

    @Test
    void write_mixtral_configHasTransformers5Keys() throws IOException {
        SyntheticCheckpoint.write(tiny(SynthArch.MIXTRAL), dir);
        JsonNode c = config();
        assertCommon(c, "mixtral", "MixtralForCausalLM", 48);
        assertThat(c.get("num_local_experts").asInt()).isEqualTo(16);
        assertThat(c.get("num_experts_per_tok").asInt()).isEqualTo(4);
        assertThat(c.get("intermediate_size").asInt()).isEqualTo(24);
        assertThat(c.get("head_dim").asInt()).isEqualTo(8);
        assertThat(c.has("num_experts")).isFalse();
    }

    @Test
    void write_qwen2Moe_configHasSharedExpertAndBiasKeys() throws IOException {
        SyntheticCheckpoint.write(tiny(SynthArch.QWEN2_MOE).withSharedIntermediate(40), dir);
        JsonNode c = config();
        assertCommon(c, "qwen2_moe", "Qwen2MoeForCausalLM", 48);
        assertThat(c.get("num_experts").asInt()).isEqualTo(16);
        assertThat(c.get("num_experts_per_tok").asInt()).isEqualTo(4);
        assertThat(c.get("moe_intermediate_size").asInt()).isEqualTo(24);
        assertThat(c.get("shared_expert_intermediate_size").asInt()).isEqualTo(40);
        assertThat(c.get("norm_topk_prob").asBoolean()).isFalse();
        assertThat(c.get("qkv_bias").asBoolean()).isTrue();
        assertThat(c.get("decoder_sparse_step").asInt()).isEqualTo(1);
        assertThat(c.get("mlp_only_layers").isArray()).isTrue();
        assertThat(c.get("mlp_only_layers").isEmpty()).isTrue();
        assertThat(c.get("use_sliding_window").asBoolean()).isFalse();
        WrittenSafetensors st = WrittenSafetensors.open(dir.resolve("model.safetensors"));
        assertThat(st.entries().get("model.layers.1.mlp.shared_expert.down_proj.weight").shape())
                .containsExactly(48L, 40L);
    }

    @Test
    void write_olmoe_configHasClipQkvAndNormTopK() throws IOException {
        SyntheticCheckpoint.write(tiny(SynthArch.OLMOE), dir);
        JsonNode c = config();
        assertCommon(c, "olmoe", "OlmoeForCausalLM", 64);
        assertThat(c.get("num_experts").asInt()).isEqualTo(16);
        assertThat(c.get("num_experts_per_tok").asInt()).isEqualTo(4);
        assertThat(c.get("intermediate_size").asInt()).isEqualTo(24);
        assertThat(c.get("norm_topk_prob").asBoolean()).isFalse();
        assertThat(c.has("clip_qkv")).isTrue();
        assertThat(c.get("clip_qkv").isNull()).isTrue();
    }

    @Test
    void write_defaultHeadDim_isNullForMixtralAndAbsentElsewhere() throws IOException {
        SyntheticCheckpoint.write(SynthSpec.of(SynthArch.MIXTRAL, 32, 16, 1, 2, 1, 4, 2, 512), dir.resolve("m"));
        SyntheticCheckpoint.write(SynthSpec.of(SynthArch.QWEN2_MOE, 32, 16, 1, 2, 1, 4, 2, 512), dir.resolve("q"));
        JsonNode mixtral = JSON.readTree(dir.resolve("m/config.json").toFile());
        JsonNode qwen = JSON.readTree(dir.resolve("q/config.json").toFile());
        assertThat(mixtral.has("head_dim")).isTrue();
        assertThat(mixtral.get("head_dim").isNull()).isTrue();
        assertThat(qwen.has("head_dim")).isFalse();
        assertThat(WrittenSafetensors.open(dir.resolve("q/model.safetensors"))
                .entries().get("model.layers.0.self_attn.k_proj.weight").shape()).containsExactly(16L, 32L);
    }

    @Test
    void write_bf16_storesRoundedF32ValuesAndSaysBfloat16() throws IOException {
        SynthSpec f32 = tiny(SynthArch.MIXTRAL);
        SyntheticCheckpoint.write(f32, dir.resolve("f32"));
        SyntheticCheckpoint.write(f32.withDtype(SynthDtype.BF16), dir.resolve("bf16"));

        assertThat(JSON.readTree(dir.resolve("bf16/config.json").toFile()).get("dtype").asString())
                .isEqualTo("bfloat16");
        WrittenSafetensors a = WrittenSafetensors.open(dir.resolve("f32/model.safetensors"));
        WrittenSafetensors b = WrittenSafetensors.open(dir.resolve("bf16/model.safetensors"));
        assertThat(b.entries().values()).extracting(Entry::dtype).containsOnly("BF16");
        String name = "model.layers.1.block_sparse_moe.experts.15.w2.weight";
        float[] full = a.floats(name);
        var half = b.bytes(name);
        for (float v : full) {
            assertThat(half.getShort()).isEqualTo(SafetensorsWriter.toBfloat16(v));
        }
    }

    @Test
    void write_values_areNormalStd01AndNormsAroundOne() throws IOException {
        SyntheticCheckpoint.write(SynthSpec.of(SynthArch.MIXTRAL, 256, 64, 1, 2, 1, 4, 2, 2048), dir);
        WrittenSafetensors st = WrittenSafetensors.open(dir.resolve("model.safetensors"));
        double[] embed = stats(st.floats("model.embed_tokens.weight"));
        assertThat(embed[0]).isCloseTo(0.0, offset(0.002));
        assertThat(embed[1]).isCloseTo(0.1, offset(0.002));
        double[] norm = stats(st.floats("model.layers.0.input_layernorm.weight"));
        assertThat(norm[0]).isCloseTo(1.0, offset(0.03));
        assertThat(norm[1]).isCloseTo(0.1, offset(0.03));
    }

    @Test
    void write_directory_hasTokenizerGenerationConfigAndReadme() throws IOException {
        SynthSpec spec = tiny(SynthArch.QWEN2_MOE);
        SyntheticCheckpoint.write(spec, dir);

        assertThat(dir.resolve("tokenizer.json")).hasSameBinaryContentAs(repoFile("models/mixtral-tiny/tokenizer.json"));
        JsonNode gen = JSON.readTree(dir.resolve("generation_config.json").toFile());
        assertThat(gen.get("bos_token_id").asInt()).isZero();
        assertThat(gen.get("eos_token_id").asInt()).isEqualTo(1);
        String readme = Files.readString(dir.resolve("README.md"));
        assertThat(readme).containsIgnoringCase("random weights")
                .contains("moemesh synth --arch qwen2-moe --hidden 48 --intermediate 24 --layers 2 --experts 16"
                        + " --top-k 4 --heads 8 --kv-heads 2 --vocab 520 --head-dim 8 --dtype f32 --max-position 4096"
                        + " --seed 7 --out " + dir);
        assertThat(dir).isDirectoryNotContaining("glob:**.partial");
    }

    /**
     * Into a directory holding a sharded checkpoint (a copy of the bundled mixtral-tiny-bf16; `--out` mistyped or
     * reused): refused before anything is written, naming the directory and the index, every file as it was. The
     * index and its shards used to be deleted and the checkpoint's config.json and tokenizer replaced.
     */
    @Test
    void write_intoAShardedCheckpointsDirectory_isRefusedNamingItsIndex_everyFileLeftAsItWas() throws IOException {
        try (var files = Files.list(repoFile("models/mixtral-tiny-bf16"))) {
            for (Path f : files.toList()) {
                Files.copy(f, dir.resolve(f.getFileName()));
            }
        }
        Map<String, String> before = contents(dir);
        SynthSpec spec = SynthSpec.of(SynthArch.MIXTRAL, 64, 96, 4, 8, 2, 4, 2, 512).withDtype(SynthDtype.BF16);

        assertThatThrownBy(() -> SyntheticCheckpoint.write(spec, dir))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith(dir + " holds model.safetensors.index.json and 3 more weight files, which "
                        + "synth does not write")
                .hasMessageContaining("config.json and tokenizer.json");
        assertThat(contents(dir)).isEqualTo(before);
    }

    /** Any .safetensors file but model.safetensors, or an index, is another checkpoint's, whatever its contents. */
    @ParameterizedTest
    @CsvSource({"model-00001-of-00002.safetensors", "consolidated.safetensors", "model.safetensors.index.json"})
    void write_intoADirectoryHoldingWeightsSynthDoesNotWrite_isRefusedNamingTheFile(String file) throws IOException {
        Files.writeString(dir.resolve(file), "{\"weight_map\": ");
        Files.writeString(dir.resolve("config.json"), "{}");

        assertThatThrownBy(() -> SyntheticCheckpoint.write(tiny(SynthArch.MIXTRAL), dir))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith(dir + " holds " + file + ", which synth does not write");
        assertThat(dir.resolve(file)).hasContent("{\"weight_map\": ");
        assertThat(dir.resolve("config.json")).hasContent("{}");
        assertThat(dir.resolve("model.safetensors")).doesNotExist();
    }

    /** Its own earlier output (model.safetensors and the files beside it) is written over: reruns and bench caches. */
    @Test
    void write_overItsOwnEarlierOutput_replacesIt(@TempDir Path fresh) throws IOException {
        SyntheticCheckpoint.write(tiny(SynthArch.MIXTRAL), dir);
        Files.writeString(dir.resolve("notes.txt"), "the caller's");
        SynthSpec other = tiny(SynthArch.QWEN2_MOE).withSeed(8);

        SyntheticCheckpoint.write(other, dir, "moemesh synth");
        SyntheticCheckpoint.write(other, fresh, "moemesh synth");

        Map<String, String> expected = new TreeMap<>(contents(fresh));
        expected.put("notes.txt", sha256("the caller's".getBytes(StandardCharsets.UTF_8)));
        assertThat(contents(dir)).isEqualTo(expected);
    }

    /**
     * A write over an earlier one that fails while writing the weights (here model.safetensors.partial is a
     * directory, which cannot be opened for writing) leaves the earlier checkpoint whole: its config.json, tokenizer
     * and README are replaced only once the new weights are complete, and nothing staged is left.
     */
    @Test
    void write_failingWhileWritingTheWeights_leavesTheEarlierCheckpointWhole() throws IOException {
        SyntheticCheckpoint.write(tiny(SynthArch.MIXTRAL), dir);
        Map<String, String> before = contents(dir);
        Files.createDirectory(dir.resolve("model.safetensors.partial"));

        assertThatThrownBy(() -> SyntheticCheckpoint.write(tiny(SynthArch.OLMOE).withSeed(8), dir))
                .isInstanceOf(IOException.class);
        assertThat(contents(dir)).isEqualTo(before);
    }

    /** Every entry of {@code d} by name, with the SHA-256 of its bytes ("dir" for a directory): short to compare. */
    private static Map<String, String> contents(Path d) throws IOException {
        Map<String, String> out = new LinkedHashMap<>();
        try (var files = Files.list(d)) {
            for (Path f : files.sorted().toList()) {
                out.put(f.getFileName().toString(), Files.isRegularFile(f) ? sha256(Files.readAllBytes(f)) : "dir");
            }
        }
        return out;
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void write_givenCommand_isQuotedInReadme() throws IOException {
        SyntheticCheckpoint.write(tiny(SynthArch.OLMOE), dir, "moemesh synth --preset s --out x");
        assertThat(Files.readString(dir.resolve("README.md"))).contains("moemesh synth --preset s --out x");
    }

    @Test
    void tokenizerVocabSize_isTheBundledTokenizers512() {
        assertThat(SyntheticCheckpoint.tokenizerVocabSize()).isEqualTo(512);
    }

    private JsonNode config() {
        return JSON.readTree(dir.resolve("config.json").toFile());
    }

    private static void assertCommon(JsonNode c, String modelType, String hfClass, int hidden) {
        assertThat(c.get("model_type").asString()).isEqualTo(modelType);
        assertThat(c.get("architectures").get(0).asString()).isEqualTo(hfClass);
        assertThat(c.get("architectures").size()).isEqualTo(1);
        assertThat(c.get("hidden_size").asInt()).isEqualTo(hidden);
        assertThat(c.get("num_hidden_layers").asInt()).isEqualTo(2);
        assertThat(c.get("num_attention_heads").asInt()).isEqualTo(8);
        assertThat(c.get("num_key_value_heads").asInt()).isEqualTo(2);
        assertThat(c.get("head_dim").asInt()).isEqualTo(8);
        assertThat(c.get("vocab_size").asInt()).isEqualTo(520);
        assertThat(c.get("max_position_embeddings").asInt()).isEqualTo(4096);
        assertThat(c.get("rms_norm_eps").asDouble()).isEqualTo(1e-5);
        assertThat(c.get("rope_parameters").get("rope_theta").asDouble()).isEqualTo(10000.0);
        assertThat(c.get("rope_parameters").get("rope_type").asString()).isEqualTo("default");
        assertThat(c.get("bos_token_id").asInt()).isZero();
        assertThat(c.get("eos_token_id").asInt()).isEqualTo(1);
        assertThat(c.get("tie_word_embeddings").asBoolean()).isFalse();
        assertThat(c.get("dtype").asString()).isEqualTo("float32");
        assertThat(c.has("sliding_window")).isTrue();
        assertThat(c.get("sliding_window").isNull()).isTrue();
        assertThat(c.get("hidden_act").asString()).isEqualTo("silu");
    }

    /** The published tensor names and shapes, written out independently of the production layout code. */
    private static Map<String, List<Long>> expectedShapes(SynthSpec s) {
        long h = s.hidden();
        long q = (long) s.heads() * s.effectiveHeadDim();
        long kv = (long) s.kvHeads() * s.effectiveHeadDim();
        long i = s.intermediate();
        Map<String, List<Long>> m = new LinkedHashMap<>();
        m.put("model.embed_tokens.weight", List.of((long) s.vocab(), h));
        m.put("model.norm.weight", List.of(h));
        m.put("lm_head.weight", List.of((long) s.vocab(), h));
        for (int l = 0; l < s.layers(); l++) {
            String p = "model.layers." + l + ".";
            m.put(p + "input_layernorm.weight", List.of(h));
            m.put(p + "post_attention_layernorm.weight", List.of(h));
            m.put(p + "self_attn.q_proj.weight", List.of(q, h));
            m.put(p + "self_attn.k_proj.weight", List.of(kv, h));
            m.put(p + "self_attn.v_proj.weight", List.of(kv, h));
            m.put(p + "self_attn.o_proj.weight", List.of(h, q));
            switch (s.arch()) {
                case MIXTRAL -> {
                    m.put(p + "block_sparse_moe.gate.weight", List.of((long) s.experts(), h));
                    for (int e = 0; e < s.experts(); e++) {
                        String x = p + "block_sparse_moe.experts." + e + ".";
                        m.put(x + "w1.weight", List.of(i, h));
                        m.put(x + "w3.weight", List.of(i, h));
                        m.put(x + "w2.weight", List.of(h, i));
                    }
                }
                case QWEN2_MOE -> {
                    m.put(p + "self_attn.q_proj.bias", List.of(q));
                    m.put(p + "self_attn.k_proj.bias", List.of(kv));
                    m.put(p + "self_attn.v_proj.bias", List.of(kv));
                    experts(m, p, s.experts(), h, i);
                    long si = s.sharedExpertIntermediate();
                    m.put(p + "mlp.shared_expert.gate_proj.weight", List.of(si, h));
                    m.put(p + "mlp.shared_expert.up_proj.weight", List.of(si, h));
                    m.put(p + "mlp.shared_expert.down_proj.weight", List.of(h, si));
                    m.put(p + "mlp.shared_expert_gate.weight", List.of(1L, h));
                }
                case OLMOE -> {
                    m.put(p + "self_attn.q_norm.weight", List.of(q));
                    m.put(p + "self_attn.k_norm.weight", List.of(kv));
                    experts(m, p, s.experts(), h, i);
                }
            }
        }
        return m;
    }

    private static void experts(Map<String, List<Long>> m, String p, int experts, long h, long i) {
        m.put(p + "mlp.gate.weight", List.of((long) experts, h));
        for (int e = 0; e < experts; e++) {
            String x = p + "mlp.experts." + e + ".";
            m.put(x + "gate_proj.weight", List.of(i, h));
            m.put(x + "up_proj.weight", List.of(i, h));
            m.put(x + "down_proj.weight", List.of(h, i));
        }
    }

    private static double[] stats(float[] v) {
        double sum = 0;
        for (float x : v) {
            sum += x;
        }
        double mean = sum / v.length;
        double sq = 0;
        for (float x : v) {
            sq += (x - mean) * (x - mean);
        }
        return new double[] {mean, Math.sqrt(sq / v.length)};
    }

    /** A file of the repository, found from the module directory surefire runs in. */
    static Path repoFile(String relative) {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve(relative))) {
            p = p.getParent();
        }
        assertThat(p).as("repository file " + relative).isNotNull();
        return p.resolve(relative);
    }
}
