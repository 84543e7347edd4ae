package io.moemesh.router.prediction;

/**
 * Naive transition counting, the reference point: the experts most often chosen at the target layer by
 * tokens that chose the same experts at the last layer known of this token (the sum of the co-activation counts
 * of each of those experts). Popularity where nothing is known yet.
 */
final class TransitionPredictor extends CountingPredictor {

    TransitionPredictor(ModelShape shape) {
        super(shape);
    }

    @Override
    public String name() {
        return "transitions";
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
