package io.moemesh.router.prediction;

import io.moemesh.router.trace.TokenRoute;
import java.util.List;

/** The experts most often chosen at the target layer, whatever the token: a baseline, never the default. */
final class PopularityPredictor implements PathPredictor {

    private final RouteCounts counts;

    PopularityPredictor(ModelShape shape) {
        this.counts = new RouteCounts(shape);
    }

    @Override
    public String name() {
        return "popularity";
    }

    @Override
    public void learn(TokenRoute token, List<TokenRoute> recent) {
        counts.add(token, recent.isEmpty() ? null : recent.getLast());
    }

    @Override
    public int[] predict(PredictionContext context, int targetLayer, int n) {
        counts.checkTarget(context, targetLayer);
        double[] score = new double[counts.shape().experts()];
        counts.popularityCounts(targetLayer, score);
        return counts.top(score, targetLayer, n);
    }
}
