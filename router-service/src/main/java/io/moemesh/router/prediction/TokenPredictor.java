package io.moemesh.router.prediction;

import io.moemesh.router.trace.TokenRoute;

/**
 * Token-conditioned prediction after Read-ME's decoupled router (Cai et al., NeurIPS 2024: routing decided from
 * the token before the backbone runs): the experts most often chosen at the target layer by earlier occurrences
 * of the same token id, blended with those that followed the same previous token. It needs token ids: for a
 * trace without them (Mixtral JSONL, id -1) or an id never seen it degrades to popularity, as it does for a
 * layer the token id was never seen at.
 */
final class TokenPredictor extends CountingPredictor {

    /** Pseudo-counts of popularity in each token's distribution (a few occurrences outweigh it). */
    static final double SMOOTHING = 2.0;

    TokenPredictor(ModelShape shape) {
        super(shape);
    }

    @Override
    public String name() {
        return "token";
    }

    @Override
    public int[] predict(PredictionContext context, int targetLayer, int n) {
        counts.checkTarget(context, targetLayer);
        int experts = counts.shape().experts();
        double[] prior = new double[experts];
        counts.popularityDistribution(targetLayer, prior);
        double[] score = new double[experts];
        double[] own = new double[experts];
        double[] before = new double[experts];
        boolean hasOwn = counts.tokenDistribution(context.tokenId(), false, targetLayer, prior, SMOOTHING, own);
        TokenRoute previous = context.previous();
        boolean hasBefore = previous != null
                && counts.tokenDistribution(previous.tokenId(), true, targetLayer, prior, SMOOTHING, before);
        for (int x = 0; x < experts; x++) {
            // the token's own id first; the previous token's id second (half weight), in log space
            score[x] = (hasOwn ? Math.log(own[x]) : Math.log(prior[x]))
                    + (hasBefore ? 0.5 * Math.log(before[x]) : 0);
        }
        return counts.top(score, targetLayer, n);
    }
}
