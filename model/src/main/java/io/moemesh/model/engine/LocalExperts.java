package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.kernel.VectorOps;
import io.moemesh.model.safetensors.TensorStore;
import java.util.Arrays;
import java.util.function.Function;

/**
 * Computes a layer's experts in this process: tokens grouped per expert, one SwiGLU GEMM chain per expert,
 * weighted results scattered back. Experts are mapped on first use. Not thread-safe: one per engine.
 */
public final class LocalExperts implements ExpertDispatch {
    private final int hidden;
    private final int dispatchable;
    private final Function<ExpertKey, ExpertWeights> loader;
    /** [layer][expert], mapped on first use. */
    private final ExpertWeights[][] loaded;
    private final ExpertGrouping grouping = new ExpertGrouping();
    private final ExpertFfn ffn = new ExpertFfn();
    private float[] gathered = new float[0];
    private float[] result = new float[0];

    public LocalExperts(ModelConfig config, Function<ExpertKey, ExpertWeights> loader) {
        this.hidden = config.hiddenSize();
        this.dispatchable = config.dispatchableExperts();
        this.loader = loader;
        this.loaded = new ExpertWeights[config.numLayers()][dispatchable];
    }

    public static LocalExperts fromStore(TensorStore store, ModelConfig config) {
        return new LocalExperts(config, key -> ExpertWeights.load(store, config, key));
    }

    @Override
    public void run(int layer, float[] x, int tokens, int[] experts, float[] weights, int pairsPerToken, float[] out) {
        Arrays.fill(out, 0, tokens * hidden, 0f);
        grouping.group(experts, tokens, pairsPerToken, dispatchable);
        for (int e = 0; e < dispatchable; e++) {
            int n = grouping.count(e);
            if (n == 0) {
                continue;
            }
            ExpertWeights w = loaded[layer][e];
            if (w == null) {
                w = loader.apply(new ExpertKey(layer, e));
                loaded[layer][e] = w;
            }
            if (gathered.length < n * hidden) {
                gathered = new float[n * hidden];
                result = new float[n * hidden];
            }
            int start = grouping.start(e);
            for (int i = 0; i < n; i++) {
                int token = grouping.pair(start + i) / pairsPerToken;
                System.arraycopy(x, token * hidden, gathered, i * hidden, hidden);
            }
            ffn.apply(w, gathered, n, result);
            for (int i = 0; i < n; i++) {
                int pair = grouping.pair(start + i);
                VectorOps.axpy(weights[pair], result, i * hidden, out, (pair / pairsPerToken) * hidden, hidden);
            }
        }
    }
}
