package io.moemesh.model.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.safetensors.TensorStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

class ModelConfigReaderTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    Path tmp;

    @Test
    void read_transformers5Layout_ropeParametersAndDtype() {
        ModelConfig c = ModelConfigReader.read(TestModels.dir(TestModels.MIXTRAL));
        assertThat(c.architecture()).isEqualTo(Architecture.MIXTRAL);
        assertThat(c.ropeTheta()).isEqualTo(10000.0);
        assertThat(c.headDim()).isEqualTo(16);
        assertThat(c.dtype()).isEqualTo("float32");
        assertThat(c.eosTokenIds()).containsExactly(1);
        assertThat(c.bosTokenId()).contains(0);
        assertThat(c.normTopKProb()).isTrue();
    }

    @Test
    void read_legacyLayout_topLevelRopeThetaAndTorchDtype() {
        ModelConfig c = ModelConfigReader.read(TestModels.dir(TestModels.MIXTRAL_BF16));
        assertThat(c.ropeTheta()).isEqualTo(10000.0);
        assertThat(c.dtype()).isEqualTo("bfloat16");
    }

    @Test
    void read_qwen2Moe_sharedExpertAndNoRenormalisation() {
        ModelConfig c = ModelConfigReader.read(TestModels.dir(TestModels.QWEN2_MOE));
        assertThat(c.architecture()).isEqualTo(Architecture.QWEN2_MOE);
        assertThat(c.sharedExpertIntermediateSize()).isEqualTo(96);
        assertThat(c.expertIntermediateSize()).isEqualTo(48);
        assertThat(c.normTopKProb()).isFalse();
        assertThat(c.attentionBias()).isTrue();
        assertThat(c.pairsPerToken()).isEqualTo(4);
    }

    @Test
    void read_eosAsListAndGenerationConfig_overridesConfig() throws IOException {
        Path dir = patched(TestModels.MIXTRAL, "eos_token_id", "[1, 2]");
        assertThat(ModelConfigReader.read(dir).eosTokenIds()).containsExactly(1, 2);
        Files.writeString(dir.resolve("generation_config.json"), "{\"bos_token_id\": 3, \"eos_token_id\": [5, 6]}");
        ModelConfig c = ModelConfigReader.read(dir);
        assertThat(c.eosTokenIds()).containsExactly(5, 6);
        assertThat(c.bosTokenId()).isEqualTo(Optional.of(3));
    }

    @ParameterizedTest(name = "{1}={2}")
    @CsvSource(delimiter = '|', value = {
        "mixtral-tiny  | model_type          | \"llama\"                                  | model_type \"llama\" is not supported",
        "mixtral-tiny  | rope_parameters     | {\"rope_type\": \"yarn\", \"factor\": 4}   | rope_type",
        "mixtral-tiny  | rope_scaling        | {\"type\": \"linear\", \"factor\": 2}      | rope_scaling.rope_type",
        "mixtral-tiny  | sliding_window      | 4096                                       | sliding_window 4096",
        "qwen2moe-tiny | use_sliding_window  | true                                       | use_sliding_window",
        "qwen2moe-tiny | mlp_only_layers     | [1]                                        | mlp_only_layers",
        "qwen2moe-tiny | decoder_sparse_step | 2                                          | decoder_sparse_step",
        "mixtral-tiny  | hidden_size         | -64                                        | hidden_size",
        "mixtral-tiny  | hidden_size         | \"64\"                                     | hidden_size",
        "mixtral-tiny  | num_key_value_heads | 3                                          | num_key_value_heads 3",
        "mixtral-tiny  | num_experts_per_tok | 9                                          | num_experts_per_tok 9 exceeds",
        "mixtral-tiny  | hidden_act          | \"gelu\"                                   | hidden_act",
        "mixtral-tiny  | dtype               | \"int8\"                                   | dtype \"int8\"",
        "mixtral-tiny  | eos_token_id        | \"x\"                                      | eos_token_id",
        "mixtral-tiny  | num_local_experts   | null                                       | num_local_experts",
        "mixtral-tiny  | rope_parameters     | {\"rope_theta\": \"1000.0\"}            | \"rope_parameters.rope_theta\" must be a finite number above 0, got \"1000.0\"",
        "mixtral-tiny  | rope_parameters     | {\"rope_theta\": 0}                      | \"rope_parameters.rope_theta\" must be a finite number above 0, got 0",
        "mixtral-tiny  | rope_parameters     | {\"rope_theta\": -10000.0}                | rope_parameters.rope_theta\" must be a finite number above 0, got -10000.0",
        "mixtral-tiny  | rope_parameters     | {\"rope_theta\": 1e400}                   | rope_parameters.rope_theta\" must be a finite number above 0",
        "mixtral-tiny-bf16 | rope_theta      | \"1000.0\"                                 | \"rope_theta\" must be a finite number above 0, got \"1000.0\"",
        "mixtral-tiny-bf16 | rope_theta      | -1                                         | \"rope_theta\" must be a finite number above 0, got -1",
        "mixtral-tiny  | rms_norm_eps        | 0                                          | \"rms_norm_eps\" must be a finite number above 0, got 0",
        "mixtral-tiny  | rms_norm_eps        | -1e-05                                     | \"rms_norm_eps\" must be a finite number above 0, got -1.0E-5",
        "mixtral-tiny  | rms_norm_eps        | 1e400                                      | \"rms_norm_eps\" must be a finite number above 0",
        "mixtral-tiny  | rms_norm_eps        | \"1e-5\"                                   | \"rms_norm_eps\" must be a finite number above 0, got \"1e-5\"",
        "mixtral-tiny  | max_position_embeddings | 0                                      | \"max_position_embeddings\" must be a positive integer, got 0",
        "mixtral-tiny  | max_position_embeddings | -512                                   | \"max_position_embeddings\" must be a positive integer, got -512",
        "qwen2moe-tiny | shared_expert_intermediate_size | -96                            | \"shared_expert_intermediate_size\" must be ≥ 0, got -96",
        // Each of these used to throw a raw Jackson exception (a stack trace in the CLI) or load as default RoPE.
        "mixtral-tiny  | rope_scaling        | {\"type\": 1}                            | \"rope_scaling.type\" must be a string, got 1",
        "mixtral-tiny  | rope_parameters     | {\"rope_type\": 1}                       | \"rope_parameters.rope_type\" must be a string, got 1",
        "mixtral-tiny  | rope_scaling        | \"linear\"                               | \"rope_scaling\" must be an object (or null), got \"linear\"",
        "mixtral-tiny  | rope_parameters     | \"yarn\"                                 | \"rope_parameters\" must be an object (or null), got \"yarn\"",
        "mixtral-tiny  | rope_parameters     | [{\"rope_type\": \"yarn\"}]            | \"rope_parameters\" must be an object (or null)",
        "mixtral-tiny  | sliding_window      | 4294967296                                 | sliding_window 4294967296 is not supported",
        "mixtral-tiny  | sliding_window      | 0.5                                        | \"sliding_window\" must be an integer or null, got 0.5",
        "mixtral-tiny  | sliding_window      | \"0\"                                    | \"sliding_window\" must be an integer or null, got \"0\"",
        "qwen2moe-tiny | layer_types         | [1]                                        | layer_types entry 1 is not supported",
        "qwen2moe-tiny | layer_types         | \"sliding_attention\"                    | \"layer_types\" must be a list (or null)",
        "qwen2moe-tiny | mlp_only_layers     | 5                                          | mlp_only_layers 5",
    })
    void read_unsupportedOrInvalidKey_failsNamingTheKey(String model, String key, String value, String message)
            throws IOException {
        Path dir = patched(model, key, value);
        assertThatThrownBy(() -> ModelConfigReader.read(dir)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(message).hasMessageContaining("config.json");
    }

    /** An absent (or null) key takes the default of the architecture's transformers config class. */
    @ParameterizedTest(name = "{0} without {1}")
    @CsvSource(delimiter = '|', value = {
        "mixtral-tiny  | rms_norm_eps                    | 1e-5",    // MixtralConfig.rms_norm_eps
        "qwen2moe-tiny | rms_norm_eps                    | 1e-6",    // Qwen2MoeConfig.rms_norm_eps
        "olmoe         | rms_norm_eps                    | 1e-5",    // OlmoeConfig.rms_norm_eps
        "mixtral-tiny  | max_position_embeddings         | 131072",  // MixtralConfig: 4096 * 32
        "qwen2moe-tiny | max_position_embeddings         | 32768",   // Qwen2MoeConfig
        "olmoe         | max_position_embeddings         | 4096",    // OlmoeConfig
        "mixtral-tiny  | rope_parameters                 | 1e6",     // MixtralConfig.default_theta
        "qwen2moe-tiny | rope_parameters                 | 10000",   // PreTrainedConfig's default theta
        "qwen2moe-tiny | shared_expert_intermediate_size | 5632",    // Qwen2MoeConfig
    })
    void read_absentKey_takesTheArchitecturesTransformersDefault(String model, String key, double expected)
            throws IOException {
        Path dir = model.equals("olmoe") ? olmoe("") : patched(model, key, "null");
        ModelConfig c = ModelConfigReader.read(dir);
        double actual = switch (key) {
            case "rms_norm_eps" -> c.rmsNormEps();
            case "max_position_embeddings" -> c.maxPositionEmbeddings();
            case "rope_parameters" -> c.ropeTheta();
            case "shared_expert_intermediate_size" -> c.sharedExpertIntermediateSize();
            default -> throw new IllegalArgumentException(key);
        };
        assertThat(actual).isEqualTo(expected);
    }

    /** The default shared expert size (5632) against the tiny model's weights (96): a clear shape error. */
    @Test
    void read_absentSharedExpertSize_thenWeightsOfAnotherSize_failNamingTheShape() throws IOException {
        ModelConfig c = ModelConfigReader.read(patched(TestModels.QWEN2_MOE, "shared_expert_intermediate_size", "null"));
        try (TensorStore store = TensorStore.open(TestModels.dir(TestModels.QWEN2_MOE))) {
            assertThatThrownBy(() -> ExpertWeights.load(store, c, new ExpertKey(0, c.numExperts())))
                    .isInstanceOf(ModelFormatException.class)
                    .hasMessageContaining("model.layers.0.mlp.shared_expert.gate_proj.weight has shape [96, 64]")
                    .hasMessageContaining("expected [5632, 64] from config.json");
        }
    }

    private Path olmoe(String extraKeys) throws IOException {
        Path dir = tmp.resolve("olmoe");
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), """
                {"model_type": "olmoe", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1,
                 "intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2, "vocab_size": 512%s}"""
                .formatted(extraKeys));
        return dir;
    }

    @Test
    void read_olmoeClipQkv_isRefused() throws IOException {
        Path dir = tmp.resolve("olmoe");
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), """
                {"model_type": "olmoe", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1,
                 "intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2, "vocab_size": 512,
                 "clip_qkv": 8.0}""");
        assertThatThrownBy(() -> ModelConfigReader.read(dir)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("clip_qkv");
    }

    @Test
    void read_missingOrMalformedConfig_namesTheFile() throws IOException {
        assertThatThrownBy(() -> ModelConfigReader.read(tmp)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("config.json").hasMessageContaining("not found");
        Files.writeString(tmp.resolve("config.json"), "{\"model_type\": \"mixtral\",");
        assertThatThrownBy(() -> ModelConfigReader.read(tmp)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("config.json").hasMessageContaining("not valid JSON");
    }

    /** A copy of a bundled model's config.json with one key replaced (JSON literal). */
    private Path patched(String model, String key, String jsonValue) throws IOException {
        ObjectNode config = (ObjectNode) JSON.readTree(TestModels.dir(model).resolve("config.json").toFile());
        config.set(key, JSON.readTree(jsonValue));
        Path dir = tmp.resolve(model + "-" + key);
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(config));
        return dir;
    }

}
