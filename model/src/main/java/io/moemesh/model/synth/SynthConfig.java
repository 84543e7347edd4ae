package io.moemesh.model.synth;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * config.json and generation_config.json of a spec, in the transformers 5 layout of its architecture (keys sorted
 * as transformers writes them). BOS is id 0 and EOS id 1, as in the bundled tokenizer.
 */
final class SynthConfig {

    static final int BOS_ID = 0;
    static final int EOS_ID = 1;

    private SynthConfig() {
    }

    static Map<String, Object> config(SynthSpec spec) {
        Map<String, Object> c = new TreeMap<>();
        c.put("model_type", spec.arch().modelType());
        c.put("architectures", List.of(spec.arch().hfClass()));
        c.put("hidden_size", spec.hidden());
        c.put("intermediate_size", spec.intermediate());
        c.put("num_hidden_layers", spec.layers());
        c.put("num_attention_heads", spec.heads());
        c.put("num_key_value_heads", spec.kvHeads());
        c.put("vocab_size", spec.vocab());
        c.put("max_position_embeddings", spec.maxPosition());
        c.put("rms_norm_eps", 1e-5);
        Map<String, Object> rope = new LinkedHashMap<>();
        rope.put("rope_theta", 10000.0);
        rope.put("rope_type", "default");
        c.put("rope_parameters", rope);
        c.put("bos_token_id", BOS_ID);
        c.put("eos_token_id", EOS_ID);
        c.put("pad_token_id", null);
        c.put("tie_word_embeddings", false);
        c.put("dtype", spec.dtype().configName());
        c.put("sliding_window", null);
        c.put("hidden_act", "silu");
        c.put("initializer_range", 0.02);
        c.put("attention_dropout", 0.0);
        c.put("use_cache", true);
        c.put("output_router_logits", false);
        c.put("num_experts_per_tok", spec.topK());
        // transformers' MixtralConfig takes head_dim=None; Qwen2-MoE and OLMoE read getattr(config, "head_dim", ...),
        // which a JSON null would break, so there the default is expressed by leaving the key out.
        if (spec.headDim().isPresent()) {
            c.put("head_dim", spec.headDim().getAsInt());
        } else if (spec.arch() == SynthArch.MIXTRAL) {
            c.put("head_dim", null);
        }
        switch (spec.arch()) {
            case MIXTRAL -> {
                c.put("num_local_experts", spec.experts());
                c.put("router_aux_loss_coef", 0.001);
                c.put("router_jitter_noise", 0.0);
            }
            case QWEN2_MOE -> {
                c.put("num_experts", spec.experts());
                c.put("moe_intermediate_size", spec.intermediate());
                c.put("shared_expert_intermediate_size", spec.sharedExpertIntermediate());
                c.put("norm_topk_prob", false);
                c.put("qkv_bias", true);
                c.put("decoder_sparse_step", 1);
                c.put("mlp_only_layers", List.of());
                c.put("use_sliding_window", false);
                c.put("router_aux_loss_coef", 0.001);
            }
            case OLMOE -> {
                c.put("num_experts", spec.experts());
                c.put("norm_topk_prob", false);
                c.put("clip_qkv", null);
                c.put("attention_bias", false);
                c.put("router_aux_loss_coef", 0.01);
            }
        }
        return c;
    }

    static Map<String, Object> generationConfig() {
        Map<String, Object> g = new TreeMap<>();
        g.put("bos_token_id", BOS_ID);
        g.put("eos_token_id", EOS_ID);
        return g;
    }
}
