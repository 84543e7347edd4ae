package io.moemesh.model.config;

import java.util.Arrays;
import java.util.Optional;

/**
 * The MoE architectures the engine reproduces exactly, each as its published {@code transformers} code does.
 * The tensor-name prefixes are those of the published checkpoints.
 */
public enum Architecture {
    /** modeling_mixtral.py: softmax over experts, top-k, renormalised; block_sparse_moe.experts.{j}.w1|w2|w3. */
    MIXTRAL("mixtral", "MixtralForCausalLM", "block_sparse_moe", "w1", "w3", "w2"),
    /** modeling_qwen2_moe.py: q/k/v bias, top-k of the softmax (renormalised only with norm_topk_prob), a shared expert. */
    QWEN2_MOE("qwen2_moe", "Qwen2MoeForCausalLM", "mlp", "gate_proj", "up_proj", "down_proj"),
    /** modeling_olmoe.py: RMSNorm q_norm / k_norm over the whole projections, top-k of the softmax. */
    OLMOE("olmoe", "OlmoeForCausalLM", "mlp", "gate_proj", "up_proj", "down_proj");

    private final String modelType;
    private final String hfClass;
    private final String moeModule;
    private final String gateProj;
    private final String upProj;
    private final String downProj;

    Architecture(String modelType, String hfClass, String moeModule, String gateProj, String upProj, String downProj) {
        this.modelType = modelType;
        this.hfClass = hfClass;
        this.moeModule = moeModule;
        this.gateProj = gateProj;
        this.upProj = upProj;
        this.downProj = downProj;
    }

    public String modelType() {
        return modelType;
    }

    public String hfClass() {
        return hfClass;
    }

    public static Optional<Architecture> fromModelType(String modelType) {
        return Arrays.stream(values()).filter(a -> a.modelType.equals(modelType)).findFirst();
    }

    public static String supportedModelTypes() {
        return String.join(", ", Arrays.stream(values()).map(Architecture::modelType).toList());
    }

    /** Name of the router (gate) weight of a layer: [num_experts, hidden]. */
    public String routerWeight(int layer) {
        return "model.layers." + layer + "." + moeModule + ".gate.weight";
    }

    /** Prefix of routed expert {@code expert} of {@code layer}, e.g. {@code model.layers.0.mlp.experts.3.}. */
    public String expertPrefix(int layer, int expert) {
        return "model.layers." + layer + "." + moeModule + ".experts." + expert + ".";
    }

    /** The SwiGLU projections' tensor names below an expert prefix: gate (w1), up (w3), down (w2). */
    public String gateProj() {
        return gateProj + ".weight";
    }

    public String upProj() {
        return upProj + ".weight";
    }

    public String downProj() {
        return downProj + ".weight";
    }
}
