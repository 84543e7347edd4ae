package io.moemesh.router.prediction;

import io.moemesh.router.trace.TokenRoute;
import java.util.List;

/**
 * Naive transition counting, the reference point: the experts most often chosen at the target layer by
 * tokens that chose the same experts at the last layer known of this token (the sum of the co-activation counts
 * of each of those experts). Popularity where nothing is known yet.
 */
final class TransitionPredictor implements PathPredictor {

    private final RouteCounts counts;

    TransitionPredictor(ModelShape shape) {
        this.counts = new RouteCounts(shape);
    }

    @Override
    public String name() {
        return "transitions";
    }

    @Override
    public void learn(TokenRoute token, List<TokenRoute> recent) {
        counts.add(token, recent.isEmpty() ? null : recent.getLast());
    }

    @Override
    public int[] predict(PredictionContext context, int targetLayer, int n) {
        counts.checkTarget(context, targetLayer);
        double[] score = new double[counts.shape().experts()];
        int last = context.lastKnownLayer();
        if (last < 0) {
            counts.popularityCounts(targetLayer, score);
        } else {
            counts.pairCounts(last, context.known()[last], targetLayer, score);
        }
        return counts.top(score, targetLayer, n);
    }
}
