package io.moemesh.router.prediction;

import io.moemesh.router.trace.TokenRoute;
import java.util.Arrays;
import java.util.List;

/**
 * {@code pooled}: the alternative to {@link LearnedPredictor} (about 5 points behind it on the traces,
 * docs/performance.md), a weighted logarithmic opinion pool (a product of
 * experts, Hinton 2002) of conditional distributions, whose weights are fitted online by softmax regression on
 * the log-probabilities (stacking). The pooled distributions, each smoothed towards the layer's popularity:
 * <ul>
 *   <li>the token's experts at each of its {@value #LAYER_SOURCES} latest known layers → the target layer
 *       (inter-layer co-activation, as Pre-gated MoE and ExFlow exploit, not only the last layer);</li>
 *   <li>its token id and its previous token's id (Read-ME's token-conditioned router);</li>
 *   <li>the previous token's experts at the target layer (temporal locality of consecutive tokens);</li>
 *   <li>the layer's popularity.</li>
 * </ul>
 * Score of expert x = Σ_s w_s · log P_s(x); a source without evidence (no such layer known, token id -1 or never
 * seen, no previous token) contributes nothing. The weights are per target layer and per gap between the target
 * and the latest known layer (1, 2, 3, ≥ 4), so a prediction 4 layers ahead uses weights fitted 4 layers ahead.
 * Each learned token first trains the weights (one AdaGrad step per layer and gap, cross-entropy against its true
 * experts, weight 1/k each) with the counts as they were before it, so the weights are fitted on unseen tokens,
 * and is then counted.
 */
final class PooledPredictor implements PathPredictor {

    /** Latest known layers pooled. */
    static final int LAYER_SOURCES = 4;

    /** Gaps with their own weights (the last one for every larger gap). */
    static final int GAPS = 4;

    /** Pseudo-counts of popularity in each conditional distribution. */
    static final double SMOOTHING = 2.0;

    private static final double LEARNING_RATE = 0.1;
    private static final int TOKEN = LAYER_SOURCES;
    private static final int PREVIOUS_TOKEN = LAYER_SOURCES + 1;
    private static final int TEMPORAL = LAYER_SOURCES + 2;
    private static final int POPULARITY = LAYER_SOURCES + 3;
    private static final int SOURCES = LAYER_SOURCES + 4;

    private final RouteCounts counts;
    private final int experts;
    private final double[] weights;
    private final double[] squaredGradients;
    private final double[][] features;
    private final boolean[] present;
    private final double[] prior;
    private final double[] score;

    PooledPredictor(ModelShape shape) {
        this.counts = new RouteCounts(shape);
        this.experts = shape.experts();
        this.weights = new double[shape.layers() * GAPS * SOURCES];
        this.squaredGradients = new double[weights.length];
        for (int i = 0; i < weights.length; i += SOURCES) {
            weights[i] = 1.0; // the latest known layer
            for (int s = 1; s < LAYER_SOURCES; s++) {
                weights[i + s] = 0.5;
            }
            weights[i + TOKEN] = 0.5;
            weights[i + PREVIOUS_TOKEN] = 0.25;
            weights[i + TEMPORAL] = 0.5;
        }
        this.features = new double[SOURCES][experts];
        this.present = new boolean[SOURCES];
        this.prior = new double[experts];
        this.score = new double[experts];
    }

    @Override
    public String name() {
        return "pooled";
    }

    @Override
    public void learn(TokenRoute token, List<TokenRoute> recent) {
        TokenRoute previous = recent.isEmpty() ? null : recent.getLast();
        for (int l = 0; l < token.layers(); l++) {
            if (!token.has(l)) {
                continue;
            }
            for (int gap = 1; gap <= GAPS && gap <= l; gap++) {
                PredictionContext context = PredictionContext.of(token, recent, l - gap);
                int w = weightsAt(l, gap);
                pool(context, l, w);
                double max = Double.NEGATIVE_INFINITY;
                for (int x = 0; x < experts; x++) {
                    max = Math.max(max, score[x]);
                }
                double sum = 0;
                for (int x = 0; x < experts; x++) {
                    score[x] = Math.exp(score[x] - max);
                    sum += score[x];
                }
                for (int s = 0; s < SOURCES; s++) {
                    if (!present[s]) {
                        continue;
                    }
                    // d(-log-likelihood)/dw_s = Σ_x p(x) f_s(x) − Σ_true f_s(x)/k
                    double gradient = 0;
                    for (int x = 0; x < experts; x++) {
                        gradient += score[x] / sum * features[s][x];
                    }
                    for (int x : token.experts()[l]) {
                        gradient -= features[s][x] / token.experts()[l].length;
                    }
                    squaredGradients[w + s] += gradient * gradient;
                    weights[w + s] -= LEARNING_RATE * gradient / Math.sqrt(squaredGradients[w + s] + 1e-8);
                }
            }
        }
        counts.add(token, previous);
    }

    @Override
    public int[] predict(PredictionContext context, int targetLayer, int n) {
        counts.checkTarget(context, targetLayer);
        int last = context.lastKnownLayer();
        int gap = last < 0 ? GAPS : Math.min(GAPS, targetLayer - last);
        pool(context, targetLayer, weightsAt(targetLayer, gap));
        return counts.top(score.clone(), targetLayer, n);
    }

    private int weightsAt(int layer, int gap) {
        return (layer * GAPS + Math.min(gap, GAPS) - 1) * SOURCES;
    }

    /** Fills {@link #features}, {@link #present} and {@link #score} for {@code l} with the weights at {@code w}. */
    private void pool(PredictionContext context, int l, int w) {
        counts.popularityDistribution(l, prior);
        Arrays.fill(present, false);
        int source = 0;
        for (int j = l - 1; j >= 0 && source < LAYER_SOURCES; j--) {
            int[] known = context.known()[j];
            if (known != null) {
                counts.pairDistribution(j, known, l, prior, SMOOTHING, features[source]);
                present[source++] = true;
            }
        }
        present[TOKEN] = counts.tokenDistribution(context.tokenId(), false, l, prior, SMOOTHING, features[TOKEN]);
        TokenRoute previous = context.previous();
        present[PREVIOUS_TOKEN] = previous != null
                && counts.tokenDistribution(previous.tokenId(), true, l, prior, SMOOTHING, features[PREVIOUS_TOKEN]);
        if (previous != null && previous.layers() == context.known().length && previous.has(l)) {
            counts.temporalDistribution(previous.experts()[l], l, prior, SMOOTHING, features[TEMPORAL]);
            present[TEMPORAL] = true;
        }
        System.arraycopy(prior, 0, features[POPULARITY], 0, experts);
        present[POPULARITY] = true;
        Arrays.fill(score, 0);
        for (int s = 0; s < SOURCES; s++) {
            if (!present[s]) {
                continue;
            }
            double weight = weights[w + s];
            for (int x = 0; x < experts; x++) {
                features[s][x] = Math.log(features[s][x]);
                score[x] += weight * features[s][x];
            }
        }
    }
}
