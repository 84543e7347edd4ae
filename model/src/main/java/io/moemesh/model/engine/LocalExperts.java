package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.safetensors.TensorStore;
import java.util.function.Function;

/**
 * Computes a layer's experts in this process with the {@link GroupedExperts} loop the expert-service runs too.
 * Experts are mapped on first use. Not thread-safe: one per engine.
 */
public final class LocalExperts implements ExpertDispatch {
    private final Function<ExpertKey, ExpertWeights> loader;
    /** [layer][expert], mapped on first use. */
    private final ExpertWeights[][] loaded;
    private final GroupedExperts loop;
    private final GroupedExperts.Weights weights = this::weights;

    public LocalExperts(ModelConfig config, Function<ExpertKey, ExpertWeights> loader) {
        this.loader = loader;
        this.loaded = new ExpertWeights[config.numLayers()][config.dispatchableExperts()];
        this.loop = new GroupedExperts(config.hiddenSize(), config.dispatchableExperts());
    }

    public static LocalExperts fromStore(TensorStore store, ModelConfig config) {
        return new LocalExperts(config, key -> ExpertWeights.load(store, config, key));
    }

    @Override
    public void run(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairsPerToken, float[] out) {
        int tokens = step.rows();
        int pairs = tokens * pairsPerToken;
        int[] pairTokens = loop.pairTokens(pairs);
        for (int p = 0; p < pairs; p++) {
            pairTokens[p] = p / pairsPerToken;
        }
        loop.compute(layer, x, tokens, experts, weights, pairs, pairTokens, this.weights, out);
    }

    private ExpertWeights weights(int layer, int expert) {
        ExpertWeights w = loaded[layer][expert];
        if (w == null) {
            w = loader.apply(new ExpertKey(layer, expert));
            loaded[layer][expert] = w;
        }
        return w;
    }
}
