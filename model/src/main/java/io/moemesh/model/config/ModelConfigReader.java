package io.moemesh.model.config;

import io.moemesh.model.ModelFormatException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Reads {@code config.json} (both the transformers-5 layout with {@code rope_parameters} and the older
 * top-level {@code rope_theta} / {@code torch_dtype} layout) and {@code generation_config.json}. A feature the
 * engine does not implement is an error naming the key, never a silently wrong answer.
 */
public final class ModelConfigReader {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private ModelConfigReader() {
    }

    public static ModelConfig read(Path modelDir) {
        Path configFile = modelDir.resolve("config.json");
        ConfigFields c = new ConfigFields(readJson(configFile), configFile.toString());
        String modelType = c.string("model_type").orElseThrow(() ->
                new ModelFormatException(c.source() + ": \"model_type\" is missing (supported: "
                        + Architecture.supportedModelTypes() + ")"));
        Architecture arch = Architecture.fromModelType(modelType).orElseThrow(() ->
                new ModelFormatException(c.source() + ": model_type \"" + modelType + "\" is not supported (supported: "
                        + Architecture.supportedModelTypes() + ")"));

        int hidden = c.positiveInt("hidden_size");
        int heads = c.positiveInt("num_attention_heads");
        int kvHeads = c.optionalInt("num_key_value_heads").orElse(heads);
        if (kvHeads <= 0 || heads % kvHeads != 0) {
            throw new ModelFormatException(c.source() + ": num_attention_heads " + heads
                    + " is not a multiple of num_key_value_heads " + kvHeads);
        }
        int headDim = c.optionalInt("head_dim").orElseGet(() -> {
            if (hidden % heads != 0) {
                throw new ModelFormatException(c.source() + ": head_dim is null and hidden_size " + hidden
                        + " is not divisible by num_attention_heads " + heads);
            }
            return hidden / heads;
        });
        if (headDim <= 0 || headDim % 2 != 0) {
            throw new ModelFormatException(c.source() + ": head_dim must be a positive even number for RoPE, got " + headDim);
        }
        String act = c.string("hidden_act").orElse("silu");
        if (!act.equals("silu")) {
            throw new ModelFormatException(c.source() + ": hidden_act \"" + act + "\" is not supported (only silu)");
        }

        checkRope(c);
        checkSlidingWindow(c, arch);
        int numExperts;
        int expertInter;
        int sharedInter = 0;
        boolean normTopK;
        boolean bias = false;
        switch (arch) {
            case MIXTRAL -> {
                numExperts = c.positiveInt("num_local_experts");
                expertInter = c.positiveInt("intermediate_size");
                normTopK = true;
            }
            case QWEN2_MOE -> {
                numExperts = c.positiveInt("num_experts");
                expertInter = c.positiveInt("moe_intermediate_size");
                // Qwen2MoeConfig's default when the key is absent; the weights' shapes then have to agree
                // (TensorStore.tensor refuses a mismatch). 0 means no shared expert (transformers' Linear of width 0
                // adds nothing either); a negative size is refused, not read as "none".
                sharedInter = c.optionalInt("shared_expert_intermediate_size").orElse(5632);
                if (sharedInter < 0) {
                    throw new ModelFormatException(c.source() + ": \"shared_expert_intermediate_size\" must be ≥ 0, got "
                            + sharedInter);
                }
                normTopK = c.bool("norm_topk_prob", false);
                bias = c.bool("qkv_bias", true);
                int sparseStep = c.optionalInt("decoder_sparse_step").orElse(1);
                if (sparseStep != 1) {
                    throw new ModelFormatException(c.source() + ": decoder_sparse_step " + sparseStep
                            + " (dense MLP layers between MoE layers) is not supported; only 1");
                }
                JsonNode mlpOnly = c.node("mlp_only_layers");
                // Not a list (a bare 5) is refused too: its size() of 0 passed it as "no dense layers".
                if (mlpOnly != null && (!mlpOnly.isArray() || mlpOnly.size() > 0)) {
                    throw new ModelFormatException(c.source() + ": mlp_only_layers " + mlpOnly
                            + " (dense MLP layers) is not supported; only []");
                }
            }
            case OLMOE -> {
                numExperts = c.positiveInt("num_experts");
                expertInter = c.positiveInt("intermediate_size");
                normTopK = c.bool("norm_topk_prob", false);
                if (c.present("clip_qkv")) {
                    throw new ModelFormatException(c.source() + ": clip_qkv " + c.node("clip_qkv")
                            + " is not supported; only null");
                }
                if (c.bool("attention_bias", false)) {
                    throw new ModelFormatException(c.source() + ": attention_bias true is not supported for olmoe");
                }
            }
            default -> throw new IllegalStateException(arch.name());
        }
        int topK = c.positiveInt("num_experts_per_tok");
        if (topK > numExperts) {
            throw new ModelFormatException(c.source() + ": num_experts_per_tok " + topK + " exceeds the " + numExperts
                    + " experts");
        }
        String dtype = c.string("dtype").or(() -> c.string("torch_dtype")).orElse("float32");
        if (!Set.of("float32", "bfloat16", "float16").contains(dtype)) {
            throw new ModelFormatException(c.source() + ": dtype \"" + dtype
                    + "\" is not supported (float32, bfloat16, float16)");
        }

        Optional<Integer> bos = c.optionalInt("bos_token_id");
        Set<Integer> eos = new LinkedHashSet<>(c.intOrIntList("eos_token_id"));
        Path genFile = modelDir.resolve("generation_config.json");
        if (Files.exists(genFile)) {
            ConfigFields g = new ConfigFields(readJson(genFile), genFile.toString());
            if (g.present("bos_token_id")) {
                bos = g.optionalInt("bos_token_id");
            }
            List<Integer> genEos = g.intOrIntList("eos_token_id");
            if (!genEos.isEmpty()) {
                eos = new LinkedHashSet<>(genEos);
            }
        }
        int vocab = c.positiveInt("vocab_size");
        return new ModelConfig(arch, hidden, expertInter, sharedInter, c.positiveInt("num_hidden_layers"), heads,
                kvHeads, headDim, vocab, maxPositions(c, arch), c.positiveNumber("rms_norm_eps", rmsNormEps(arch)),
                ropeTheta(c, arch), numExperts, topK, normTopK, bias,
                arch == Architecture.OLMOE, c.bool("tie_word_embeddings", false), bos, List.copyOf(eos), dtype);
    }

    private static void checkRope(ConfigFields c) {
        for (String key : List.of("rope_parameters", "rope_scaling")) {
            JsonNode rope = c.node(key);
            if (rope == null) {
                continue;
            }
            // transformers reads both as a dict; a bare "yarn" or a list used to pass as default RoPE, unread.
            if (!rope.isObject()) {
                throw new ModelFormatException(c.source() + ": \"" + key + "\" must be an object (or null), got "
                        + ConfigFields.describe(rope));
            }
            String field = rope.has("rope_type") ? "rope_type" : "type";
            JsonNode type = rope.get(field);
            if (type != null && !type.isNull() && !type.isString()) {
                throw new ModelFormatException(c.source() + ": \"" + key + "." + field + "\" must be a string, got "
                        + ConfigFields.describe(type));
            }
            if (type != null && !type.isNull() && !"default".equals(type.stringValue())) {
                throw new ModelFormatException(c.source() + ": " + key + ".rope_type " + type
                        + " is not supported; only \"default\" RoPE");
            }
        }
    }

    private static double ropeTheta(ConfigFields c, Architecture arch) {
        // The architectures' defaults in transformers when the checkpoint leaves rope_theta out (MixtralConfig's
        // default_theta 1e6; PreTrainedConfig's 10000 for Qwen2MoeConfig and OlmoeConfig). A present value that is
        // not a positive finite number is refused: a string "1000.0" used to fall back to the default silently.
        double fallback = arch == Architecture.MIXTRAL ? 1e6 : 10000.0;
        JsonNode params = c.node("rope_parameters");
        if (params != null && params.isObject() && params.has("rope_theta") && !params.get("rope_theta").isNull()) {
            return c.positiveNumber(params.get("rope_theta"), "rope_parameters.rope_theta", fallback);
        }
        return c.positiveNumber("rope_theta", fallback);
    }

    /** rms_norm_eps when absent: MixtralConfig and OlmoeConfig 1e-5, Qwen2MoeConfig 1e-6 (transformers). */
    private static double rmsNormEps(Architecture arch) {
        return arch == Architecture.QWEN2_MOE ? 1e-6 : 1e-5;
    }

    /** max_position_embeddings when absent: MixtralConfig 4096 × 32, Qwen2MoeConfig 32768, OlmoeConfig 4096. */
    private static int maxPositions(ConfigFields c, Architecture arch) {
        if (!c.present("max_position_embeddings")) {
            return switch (arch) {
                case MIXTRAL -> 4096 * 32;
                case QWEN2_MOE -> 32768;
                case OLMOE -> 4096;
            };
        }
        return c.positiveInt("max_position_embeddings");
    }

    /**
     * Mixtral and OLMoE apply {@code sliding_window} whenever it is set; Qwen2-MoE only on layers that
     * {@code use_sliding_window} / {@code layer_types} mark as sliding. The engine attends to the full context,
     * so a window in effect is refused.
     */
    private static void checkSlidingWindow(ConfigFields c, Architecture arch) {
        if (c.bool("use_sliding_window", false)) {
            throw new ModelFormatException(c.source() + ": use_sliding_window true is not supported (full attention only)");
        }
        JsonNode layerTypes = c.node("layer_types");
        if (layerTypes != null && !layerTypes.isArray()) {
            throw new ModelFormatException(c.source() + ": \"layer_types\" must be a list (or null), got "
                    + ConfigFields.describe(layerTypes));
        }
        if (layerTypes != null) {
            for (JsonNode t : layerTypes.values()) {
                if (!t.isString() || !"full_attention".equals(t.stringValue())) {
                    throw new ModelFormatException(c.source() + ": layer_types entry " + t
                            + " is not supported (full_attention only)");
                }
            }
        }
        if (arch != Architecture.QWEN2_MOE) {
            JsonNode window = c.node("sliding_window");
            if (window != null && !window.isIntegralNumber()) {
                throw new ModelFormatException(c.source() + ": \"sliding_window\" must be an integer or null, got "
                        + ConfigFields.describe(window));
            }
            // Any integer: one past the int range (4294967296) is refused as a window in effect, not a Jackson error.
            if (window != null && !(window.canConvertToLong() && window.longValue() == 0)) {
                throw new ModelFormatException(c.source() + ": sliding_window " + window
                        + " is not supported (full attention only; set it to null)");
            }
        }
    }

    static JsonNode readJson(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException(file + ": file not found");
        }
        if (!Files.isReadable(file)) {
            throw new ModelFormatException(file + ": file is not readable");
        }
        try {
            return JSON.readTree(file.toFile());
        } catch (JacksonException e) {
            throw new ModelFormatException(file + ": not valid JSON (" + e.getOriginalMessage() + ")", e);
        }
    }
}
