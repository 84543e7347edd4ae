package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.kernel.Matrix;
import io.moemesh.model.safetensors.TensorStore;

/**
 * One SwiGLU expert: {@code down(silu(gate(x)) · up(x))}. Weights stay memory-mapped in the checkpoint dtype.
 *
 * @param gate [intermediate, hidden] (Mixtral w1, gate_proj)
 * @param up   [intermediate, hidden] (Mixtral w3, up_proj)
 * @param down [hidden, intermediate] (Mixtral w2, down_proj)
 */
public record ExpertWeights(ExpertKey key, Matrix gate, Matrix up, Matrix down) {

    public int intermediate() {
        return gate.rows();
    }

    /** Bytes of weights this expert keeps resident. */
    public long byteSize() {
        return gate.byteSize() + up.byteSize() + down.byteSize();
    }

    /**
     * Checks every dispatchable expert of every layer (the Qwen2-MoE shared expert included): each tensor present,
     * of a dtype the engine computes (the shard's header is parsed when it is first mapped), in its shape from
     * config.json; a {@link io.moemesh.model.ModelFormatException} names the first that is not. No tensor data is
     * read: the views are made and dropped. Engines whose experts load on first use ({@link LocalExperts}) met such
     * a tensor in the middle of a step instead, and failed every request of that step.
     */
    public static void checkAll(TensorStore store, ModelConfig config) {
        for (int layer = 0; layer < config.numLayers(); layer++) {
            for (int expert = 0; expert < config.dispatchableExperts(); expert++) {
                load(store, config, new ExpertKey(layer, expert));
            }
        }
    }

    /**
     * Loads routed expert {@code expert} of {@code layer}, or for {@code expert == numExperts} the Qwen2-MoE
     * shared expert, which the mesh dispatches like any other expert.
     */
    public static ExpertWeights load(TensorStore store, ModelConfig config, ExpertKey key) {
        int layer = key.layer();
        int expert = key.expert();
        if (layer < 0 || layer >= config.numLayers() || expert < 0 || expert >= config.dispatchableExperts()) {
            throw new IllegalArgumentException("no expert " + key + " in a model of " + config.numLayers()
                    + " layers and " + config.dispatchableExperts() + " dispatchable experts");
        }
        int h = config.hiddenSize();
        if (expert == config.numExperts()) {
            String p = "model.layers." + layer + ".mlp.shared_expert.";
            int f = config.sharedExpertIntermediateSize();
            return new ExpertWeights(key, Matrix.of(store.tensor(p + "gate_proj.weight", f, h)),
                    Matrix.of(store.tensor(p + "up_proj.weight", f, h)),
                    Matrix.of(store.tensor(p + "down_proj.weight", h, f)));
        }
        var arch = config.architecture();
        String p = arch.expertPrefix(layer, expert);
        int f = config.expertIntermediateSize();
        return new ExpertWeights(key, Matrix.of(store.tensor(p + arch.gateProj(), f, h)),
                Matrix.of(store.tensor(p + arch.upProj(), f, h)),
                Matrix.of(store.tensor(p + arch.downProj(), h, f)));
    }
}
