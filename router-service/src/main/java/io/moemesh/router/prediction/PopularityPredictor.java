package io.moemesh.router.prediction;

/** The experts most often chosen at the target layer, whatever the token: a baseline, never the default. */
final class PopularityPredictor extends CountingPredictor {

    PopularityPredictor(ModelShape shape) {
        super(shape);
    }

    @Override
    public String name() {
        return "popularity";
    }

    @Override
    public int[] predict(PredictionContext context, int targetLayer, int n) {
        counts.checkTarget(context, targetLayer);
        double[] score = new double[counts.shape().experts()];
        counts.popularityCounts(targetLayer, score);
        return counts.top(score, targetLayer, n);
    }
}
