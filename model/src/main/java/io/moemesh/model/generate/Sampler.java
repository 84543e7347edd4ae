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
    private float[] probs = new float[0];
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
            probs = new float[vocab];
            order = new Integer[vocab];
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            probs[i] = (float) (logits[off + i] / params.temperature());
            max = Math.max(max, probs[i]);
        }
        for (int i = 0; i < vocab; i++) {
            order[i] = i;
        }
        float[] p = probs;
        Arrays.sort(order, 0, vocab, (a, b) -> a.equals(b) ? 0 : p[a] != p[b] ? Float.compare(p[b], p[a]) : Integer.compare(a, b));
        int keep = params.topK() > 0 ? Math.min(params.topK(), vocab) : vocab;
        double sum = 0;
        for (int r = 0; r < keep; r++) {
            sum += Math.exp(probs[order[r]] - max);
        }
        if (params.topP() < 1) {
            double mass = 0;
            for (int r = 0; r < keep; r++) {
                mass += Math.exp(probs[order[r]] - max) / sum;
                if (mass >= params.topP()) {
                    keep = r + 1;
                    break;
                }
            }
            sum = 0;
            for (int r = 0; r < keep; r++) {
                sum += Math.exp(probs[order[r]] - max);
            }
        }
        double u = random.nextDouble() * sum;
        double acc = 0;
        for (int r = 0; r < keep; r++) {
            acc += Math.exp(probs[order[r]] - max);
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
