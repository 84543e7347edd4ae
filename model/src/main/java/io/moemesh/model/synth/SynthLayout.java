package io.moemesh.model.synth;

import io.moemesh.model.safetensors.DType;
import io.moemesh.model.safetensors.SafetensorsWriter.Tensor;
import java.util.ArrayList;
import java.util.List;

/**
 * The tensors of a spec: the published checkpoint names of its architecture and their shapes, linear weights as
 * [out_features, in_features]. Order: embeddings, then layer by layer, then final norm and lm_head.
 */
final class SynthLayout {

    private SynthLayout() {
    }

    static List<Tensor> tensors(SynthSpec spec) {
        DType dt = spec.dtype().tensorDtype();
        long hidden = spec.hidden();
        long q = (long) spec.heads() * spec.effectiveHeadDim();
        long kv = (long) spec.kvHeads() * spec.effectiveHeadDim();
        long inter = spec.intermediate();
        List<Tensor> out = new ArrayList<>();
        out.add(Tensor.of("model.embed_tokens.weight", dt, spec.vocab(), hidden));
        for (int layer = 0; layer < spec.layers(); layer++) {
            String p = "model.layers." + layer + ".";
            out.add(Tensor.of(p + "input_layernorm.weight", dt, hidden));
            out.add(Tensor.of(p + "self_attn.q_proj.weight", dt, q, hidden));
            out.add(Tensor.of(p + "self_attn.k_proj.weight", dt, kv, hidden));
            out.add(Tensor.of(p + "self_attn.v_proj.weight", dt, kv, hidden));
            if (spec.arch() == SynthArch.QWEN2_MOE) {
                out.add(Tensor.of(p + "self_attn.q_proj.bias", dt, q));
                out.add(Tensor.of(p + "self_attn.k_proj.bias", dt, kv));
                out.add(Tensor.of(p + "self_attn.v_proj.bias", dt, kv));
            }
            if (spec.arch() == SynthArch.OLMOE) {
                out.add(Tensor.of(p + "self_attn.q_norm.weight", dt, q));
                out.add(Tensor.of(p + "self_attn.k_norm.weight", dt, kv));
            }
            out.add(Tensor.of(p + "self_attn.o_proj.weight", dt, hidden, q));
            out.add(Tensor.of(p + "post_attention_layernorm.weight", dt, hidden));
            String moe = p + (spec.arch() == SynthArch.MIXTRAL ? "block_sparse_moe." : "mlp.");
            out.add(Tensor.of(moe + "gate.weight", dt, spec.experts(), hidden));
            for (int e = 0; e < spec.experts(); e++) {
                String x = moe + "experts." + e + ".";
                if (spec.arch() == SynthArch.MIXTRAL) {
                    out.add(Tensor.of(x + "w1.weight", dt, inter, hidden));
                    out.add(Tensor.of(x + "w2.weight", dt, hidden, inter));
                    out.add(Tensor.of(x + "w3.weight", dt, inter, hidden));
                } else {
                    swiglu(out, x, dt, hidden, inter);
                }
            }
            if (spec.arch() == SynthArch.QWEN2_MOE) {
                swiglu(out, moe + "shared_expert.", dt, hidden, spec.sharedExpertIntermediate());
                out.add(Tensor.of(moe + "shared_expert_gate.weight", dt, 1, hidden));
            }
        }
        out.add(Tensor.of("model.norm.weight", dt, hidden));
        out.add(Tensor.of("lm_head.weight", dt, spec.vocab(), hidden));
        return List.copyOf(out);
    }

    /** RMSNorm weights (initialised around 1): every name ending in {@code norm.weight}. */
    static boolean isNorm(String name) {
        return name.endsWith("norm.weight");
    }

    private static void swiglu(List<Tensor> out, String prefix, DType dt, long hidden, long inter) {
        out.add(Tensor.of(prefix + "gate_proj.weight", dt, inter, hidden));
        out.add(Tensor.of(prefix + "up_proj.weight", dt, inter, hidden));
        out.add(Tensor.of(prefix + "down_proj.weight", dt, hidden, inter));
    }
}
