package io.moemesh.router.prediction;

import io.moemesh.router.trace.TokenRoute;
import java.util.Arrays;
import java.util.List;

/**
 * An online softmax regression over the experts of the target layer (in the spirit of ExpertFlow's learned path
 * predictor, fitted here on routes instead of hidden states, which the router does not have), with sparse binary
 * features of what is known of the token:
 * <ul>
 *   <li>each expert it chose at every known earlier layer (one feature per (layer, expert): all earlier layers,
 *       not only the last);</li>
 *   <li>each pair of experts chosen together at its latest known layer (co-activation: a conjunction the
 *       per-layer features cannot express; hashed into {@value #PAIR_BUCKETS} buckets when experts² is larger,
 *       so exact for up to 64 experts);</li>
 *   <li>its token id and its previous token's id, hashed into {@value #TOKEN_BUCKETS} buckets each (Read-ME's
 *       token-conditioned routing; absent when the id is -1, as in Mixtral JSONL);</li>
 *   <li>a bias (the layer's popularity).</li>
 * </ul>
 * One weight matrix per target layer and gap between the target and the latest known layer (1, 2, 3, ≥ 4): a
 * prediction 4 layers ahead uses a model fitted 4 layers ahead. {@link #learn} takes one AdaGrad step (Duchi et
 * al. 2011) per layer and gap on the cross-entropy against the token's true experts (1/k each), features built as
 * {@link #predict} would see them. Scores start at 0, so an untrained model ranks by popularity (the tie-break).
 * Memory: layers × 4 × features × experts floats, twice (FLAME-MoE: 8 × 4 × 4,865 × 64, 40 MB).
 */
final class LearnedPredictor implements PathPredictor {

    /** Gaps with their own weights (the last one for every larger gap). */
    static final int GAPS = 4;

    /** The most pair buckets (64 experts fit exactly). */
    static final int PAIR_BUCKETS = 4096;

    /** Buckets for the token id, and again for the previous token's id. */
    static final int TOKEN_BUCKETS = 128;

    /**
     * AdaGrad's step size: 0.05 balances the two traces (0.03 gains 0.002 on FLAME and loses 0.013 on Mixtral
     * with k guesses, 0.08 the reverse; docs/performance.md).
     */
    static final float LEARNING_RATE = 0.05f;

    private final RouteCounts counts;
    private final int layers;
    private final int experts;
    private final int pairBuckets;
    private final int pairBase;
    private final int tokenBase;
    private final int bias;
    private final int featureCount;
    private final float[][] weights;
    private final float[][] squaredGradients;
    private final int[] active;
    private final double[] score;

    LearnedPredictor(ModelShape shape) {
        this.counts = new RouteCounts(shape);
        this.layers = shape.layers();
        this.experts = shape.experts();
        this.pairBuckets = (int) Math.min((long) experts * experts, PAIR_BUCKETS);
        this.pairBase = layers * experts;
        this.tokenBase = pairBase + pairBuckets;
        this.bias = tokenBase + 2 * TOKEN_BUCKETS;
        this.featureCount = bias + 1;
        this.weights = new float[layers * GAPS][];
        this.squaredGradients = new float[layers * GAPS][];
        this.active = new int[layers * shape.topK() + shape.topK() * shape.topK() + 3];
        this.score = new double[experts];
    }

    @Override
    public String name() {
        return "learned";
    }

    @Override
    public void learn(TokenRoute token, List<TokenRoute> recent) {
        for (int l = 1; l < token.layers(); l++) {
            if (!token.has(l)) {
                continue;
            }
            int[] truth = token.experts()[l];
            for (int gap = 1; gap <= GAPS && gap <= l; gap++) {
                int slot = l * GAPS + gap - 1;
                if (weights[slot] == null) {
                    weights[slot] = new float[featureCount * experts];
                    squaredGradients[slot] = new float[featureCount * experts];
                }
                int n = features(PredictionContext.of(token, recent, l - gap), l);
                scores(weights[slot], n);
                double max = Double.NEGATIVE_INFINITY;
                for (double s : score) {
                    max = Math.max(max, s);
                }
                double sum = 0;
                for (int x = 0; x < experts; x++) {
                    score[x] = Math.exp(score[x] - max);
                    sum += score[x];
                }
                float[] w = weights[slot];
                float[] g2 = squaredGradients[slot];
                for (int x = 0; x < experts; x++) {
                    double target = 0;
                    for (int t : truth) {
                        if (t == x) {
                            target = 1.0 / truth.length;
                        }
                    }
                    double gradient = score[x] / sum - target; // d cross-entropy / d logit, per active feature
                    for (int i = 0; i < n; i++) {
                        int at = active[i] * experts + x;
                        g2[at] += (float) (gradient * gradient);
                        w[at] -= (float) (LEARNING_RATE * gradient / Math.sqrt(g2[at] + 1e-8));
                    }
                }
            }
        }
        counts.add(token, recent.isEmpty() ? null : recent.getLast());
    }

    @Override
    public int[] predict(PredictionContext context, int targetLayer, int n) {
        counts.checkTarget(context, targetLayer);
        int last = context.lastKnownLayer();
        int gap = last < 0 ? GAPS : Math.min(GAPS, targetLayer - last);
        float[] w = weights[targetLayer * GAPS + gap - 1];
        if (w == null) {
            Arrays.fill(score, 0);
        } else {
            scores(w, features(context, targetLayer));
        }
        return counts.top(score.clone(), targetLayer, n);
    }

    private void scores(float[] w, int n) {
        Arrays.fill(score, 0);
        for (int i = 0; i < n; i++) {
            int base = active[i] * experts;
            for (int x = 0; x < experts; x++) {
                score[x] += w[base + x];
            }
        }
    }

    /** Fills {@link #active} with the context's feature indexes for target layer {@code l}; returns how many. */
    private int features(PredictionContext context, int l) {
        int n = 0;
        int latest = -1;
        for (int j = 0; j < l; j++) {
            int[] known = context.known()[j];
            if (known != null) {
                latest = j;
                for (int e : known) {
                    active[n++] = j * experts + e;
                }
            }
        }
        if (latest >= 0) {
            int[] known = context.known()[latest];
            for (int a = 0; a < known.length; a++) {
                for (int b = 0; b < known.length; b++) {
                    if (known[a] < known[b]) {
                        active[n++] = pairBase + (known[a] * experts + known[b]) % pairBuckets;
                    }
                }
            }
        }
        if (context.tokenId() >= 0) {
            active[n++] = tokenBase + Math.floorMod(context.tokenId() * 0x9E3779B1, TOKEN_BUCKETS);
        }
        TokenRoute previous = context.previous();
        if (previous != null && previous.tokenId() >= 0) {
            active[n++] = tokenBase + TOKEN_BUCKETS + Math.floorMod(previous.tokenId() * 0x9E3779B1, TOKEN_BUCKETS);
        }
        active[n++] = bias;
        return n;
    }
}
