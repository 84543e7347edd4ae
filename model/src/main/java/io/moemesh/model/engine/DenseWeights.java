package io.moemesh.model.engine;

import io.moemesh.model.config.Architecture;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.kernel.Matrix;
import io.moemesh.model.safetensors.TensorStore;
import io.moemesh.model.safetensors.TensorView;

/**
 * Everything but the experts: embeddings, attention, norms, routers, LM head — what the gateway holds.
 * Every tensor's shape is checked against config.json on load.
 */
public record DenseWeights(Matrix embed, LayerWeights[] layers, float[] finalNorm, Matrix lmHead) {

    public static DenseWeights load(TensorStore store, ModelConfig c) {
        int h = c.hiddenSize();
        Matrix embed = Matrix.of(store.tensor("model.embed_tokens.weight", c.vocabSize(), h));
        LayerWeights[] layers = new LayerWeights[c.numLayers()];
        for (int l = 0; l < layers.length; l++) {
            String p = "model.layers." + l + ".";
            String a = p + "self_attn.";
            boolean bias = c.attentionBias();
            boolean qwen = c.architecture() == Architecture.QWEN2_MOE;
            layers[l] = new LayerWeights(
                    vector(store, p + "input_layernorm.weight", h),
                    Matrix.of(store.tensor(a + "q_proj.weight", c.qDim(), h)),
                    Matrix.of(store.tensor(a + "k_proj.weight", c.kvDim(), h)),
                    Matrix.of(store.tensor(a + "v_proj.weight", c.kvDim(), h)),
                    Matrix.of(store.tensor(a + "o_proj.weight", h, c.qDim())),
                    bias ? vector(store, a + "q_proj.bias", c.qDim()) : null,
                    bias ? vector(store, a + "k_proj.bias", c.kvDim()) : null,
                    bias ? vector(store, a + "v_proj.bias", c.kvDim()) : null,
                    c.qkNorm() ? vector(store, a + "q_norm.weight", c.qDim()) : null,
                    c.qkNorm() ? vector(store, a + "k_norm.weight", c.kvDim()) : null,
                    vector(store, p + "post_attention_layernorm.weight", h),
                    Matrix.of(store.tensor(c.architecture().routerWeight(l), c.numExperts(), h)),
                    qwen && c.hasSharedExpert()
                            ? Matrix.of(store.tensor(p + "mlp.shared_expert_gate.weight", 1, h)) : null);
        }
        float[] norm = vector(store, "model.norm.weight", h);
        // Tied embeddings: transformers ties lm_head to embed_tokens, so the embedding matrix is the head.
        Matrix head = c.tieWordEmbeddings() ? embed : Matrix.of(store.tensor("lm_head.weight", c.vocabSize(), h));
        return new DenseWeights(embed, layers, norm, head);
    }

    static float[] vector(TensorStore store, String name, int n) {
        TensorView t = store.tensor(name, n);
        float[] out = new float[n];
        Matrix.of1d(t).row(0, out, 0);
        return out;
    }
}
