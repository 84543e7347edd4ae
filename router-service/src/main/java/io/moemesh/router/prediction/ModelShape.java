package io.moemesh.router.prediction;

import io.moemesh.router.trace.RouteTrace;

/**
 * What a predictor needs to know of the model: MoE layers (indexes 0..layers-1), routed experts per layer and
 * top-k.
 *
 * @param layers  MoE layers
 * @param experts routed experts per layer
 * @param topK    experts a token's gate chooses per layer
 */
public record ModelShape(int layers, int experts, int topK) {

    public ModelShape {
        if (layers < 1 || experts < 1 || topK < 1 || topK > experts) {
            throw new IllegalArgumentException("a model shape needs layers ≥ 1, experts ≥ 1 and 1 ≤ top-k ≤ experts,"
                    + " got layers " + layers + ", experts " + experts + ", top-k " + topK);
        }
    }

    /** The shape of the model behind {@code trace}. */
    public static ModelShape of(RouteTrace trace) {
        return new ModelShape(trace.layers(), trace.experts(), trace.topK());
    }
}
