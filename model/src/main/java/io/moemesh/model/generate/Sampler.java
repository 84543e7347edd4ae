package io.moemesh.model.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from a row of logits: argmax when greedy (first maximum, as torch.argmax), otherwise
 * temperature, then top-k, then top-p (nucleus, Holtzman et al. 2019, arXiv:1904.09751; the smallest set of
 * most likely tokens whose mass reaches p, as transformers' TopPLogitsWarper keeps it), then a draw from the
 * request's own seeded generator. One sampler per request; not thread-safe.
 */
public final class Sampler {
    private final SamplingParams params;
    private final SplittableRandom random;
    private double[] probs = new double[0];
    private Integer[] order = new Integer[0];

    public Sampler(SamplingParams params) {
        this.params = params;
        this.random = new SplittableRandom(params.seed().orElseGet(() -> new SplittableRandom().nextLong()));
    }

    public int sample(float[] logits, int off, int vocab) {
        if (params.isGreedy()) {
            return argmax(logits, off, vocab);
        }
        if (probs.length < vocab) {
            probs = new double[vocab];
            order = new Integer[vocab];
        }
        // The max is subtracted before dividing by T, in double: logit / T alone overflows to ±Inf for a tiny
        // positive T (≈ 1e-38 in float), and exp(Inf - Inf) = NaN then drew the last-ranked token. Shifted this way
        // the best logit scales to exactly 0 and every other to a finite negative or -Inf, so T → 0 is greedy, as
        // the limit of softmax(logits / T) is. softmax is shift-invariant, so any other T draws the same
        // distribution as transformers' TemperatureLogitsWarper (scores / T) followed by softmax.
        float maxLogit = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            maxLogit = Math.max(maxLogit, logits[off + i]);
        }
        for (int i = 0; i < vocab; i++) {
            probs[i] = ((double) logits[off + i] - maxLogit) / params.temperature();
        }
        for (int i = 0; i < vocab; i++) {
            order[i] = i;
        }
        double[] p = probs;
        Arrays.sort(order, 0, vocab, (a, b) -> a.equals(b) ? 0 : p[a] != p[b] ? Double.compare(p[b], p[a]) : Integer.compare(a, b));
        int keep = params.topK() > 0 ? Math.min(params.topK(), vocab) : vocab;
        double sum = 0;
        for (int r = 0; r < keep; r++) {
            sum += Math.exp(probs[order[r]]);
        }
        if (params.topP() < 1) {
            double mass = 0;
            for (int r = 0; r < keep; r++) {
                mass += Math.exp(probs[order[r]]) / sum;
                if (mass >= params.topP()) {
                    keep = r + 1;
                    break;
                }
            }
            sum = 0;
            for (int r = 0; r < keep; r++) {
                sum += Math.exp(probs[order[r]]);
            }
        }
        double u = random.nextDouble() * sum;
        double acc = 0;
        for (int r = 0; r < keep; r++) {
            acc += Math.exp(probs[order[r]]);
            if (u < acc) {
                return order[r];
            }
        }
        return order[keep - 1];
    }

    public static int argmax(float[] logits, int off, int n) {
        int best = 0;
        float bestV = logits[off];
        for (int i = 1; i < n; i++) {
            if (logits[off + i] > bestV) {
                bestV = logits[off + i];
                best = i;
            }
        }
        return best;
    }
}
