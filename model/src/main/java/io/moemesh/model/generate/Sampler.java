package io.moemesh.model.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from a row of logits: argmax when greedy (first maximum, as torch.argmax), otherwise
 * temperature, then top-k, then top-p (nucleus, Holtzman et al. 2019, arXiv:1904.09751), then one draw from the
 * request's own seeded generator, as transformers' TemperatureLogitsWarper, TopKLogitsWarper and
 * TopPLogitsWarper (generation/logits_process.py, applied in that order) followed by multinomial sampling:
 * <ul>
 *   <li>top-k keeps every token whose score is not below the k-th largest ({@code scores < topk_values[..., -1]}
 *       are removed), so tokens tied with the k-th are all kept;</li>
 *   <li>top-p keeps the smallest set of most likely tokens whose mass reaches p (the warper removes the tokens
 *       whose ascending cumulative probability is ≤ 1 - p), at least one.</li>
 * </ul>
 * The draw walks the kept tokens from the most likely (ties by token id) and returns the first whose cumulative
 * weight exceeds {@code u * total}, u being one {@code nextDouble()} per sampled token.
 *
 * <p>Nothing sorts the whole vocabulary (a boxed sort of 152k ids took tens of milliseconds per token on the
 * engine thread): top-k is a quickselect of the k-th score and a sort of the tokens kept; without top-k, a
 * histogram of the weights by log-weight (buckets of 1/4 below the best token) tells which head of the
 * distribution holds the nucleus mass or the drawn point, and only that head is sorted (the next bucket too,
 * should rounding leave it short). A head is a prefix of the full order, ties included, so the tokens drawn are
 * those of a full sort, the same up to rounding of the normalising sum (summed in token order now, where a full
 * sort summed it in draw order). One sampler per request, holding its parameters and its random generator; the
 * working arrays are the caller's {@link SamplerScratch}, one per sampling thread (it has none of a sequence's
 * state, so which scratch a draw goes through never changes it). Not thread-safe.
 *
 * <p>A row with a NaN or +Inf logit, or none finite, is refused with an {@link IllegalStateException}, greedy or
 * not: such a row comes from broken arithmetic, any token picked from it would be a wrong one (exp(Inf - Inf) is
 * NaN, and a NaN is skipped by every comparison), and transformers' multinomial raises on it too.
 */
public final class Sampler {
    private static final int BUCKETS_PER_UNIT = 4;
    private static final int LAST_BUCKET = 64 * BUCKETS_PER_UNIT;
    /** Buckets of {@link SamplerScratch#bucketMass}. */
    static final int BUCKETS = LAST_BUCKET + 1;

    private final SamplingParams params;
    private final SplittableRandom random;

    public Sampler(SamplingParams params) {
        this.params = params;
        this.random = new SplittableRandom(params.seed().orElseGet(() -> new SplittableRandom().nextLong()));
    }

    /**
     * The next token from {@code logits[off, off + vocab)}, working in {@code w} (untouched when greedy).
     *
     * @throws IllegalStateException when the row is not finite (see above)
     */
    public int sample(float[] logits, int off, int vocab, SamplerScratch w) {
        if (params.isGreedy()) {
            return argmax(logits, off, vocab);
        }
        w.ensure(vocab);
        double[] scaled = w.scaled;
        int[] order = w.order;
        // The max is subtracted before dividing by T, in double: logit / T alone overflows to ±Inf for a tiny
        // positive T (≈ 1e-38 in float), and exp(Inf - Inf) = NaN then drew the last-ranked token. Shifted this way
        // the best logit scales to exactly 0 and every other to a finite negative or -Inf, so T → 0 is greedy, as
        // the limit of softmax(logits / T) is. softmax is shift-invariant, so any other T draws the same
        // distribution as transformers' TemperatureLogitsWarper (scores / T) followed by softmax. That holds because
        // the max is finite: Math.max propagates NaN, so a NaN or +Inf logit (or a row of -Inf) leaves it non-finite
        // and the row is refused here, in the pass that finds the max.
        float maxLogit = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            maxLogit = Math.max(maxLogit, logits[off + i]);
        }
        if (!Float.isFinite(maxLogit)) {
            throw notFinite(logits, off, vocab);
        }
        for (int i = 0; i < vocab; i++) {
            scaled[i] = ((double) logits[off + i] - maxLogit) / params.temperature();
        }
        int k = params.topK() > 0 ? Math.min(params.topK(), vocab) : vocab;
        if (k < vocab) {
            double kth = kthLargest(w, vocab, k);
            int n = 0;
            for (int i = 0; i < vocab; i++) {
                if (compare(scaled[i], kth) >= 0) {
                    order[n++] = i;
                }
            }
            sortDescending(w, n);
            double sum = 0;
            for (int r = 0; r < n; r++) {
                sum += Math.exp(scaled[order[r]]);
            }
            int keep = params.topP() < 1 ? nucleus(w, n, sum, true) : n;
            return draw(w, keep);
        }
        // Without top-k: the weights' total and, per bucket of 1/4 in log-weight below the best token, their mass,
        // so that only the head holding the mass wanted (the nucleus, or the drawn point) is sorted. The total is
        // summed in token order, so u * total may differ from a draw-order sum in its last bits.
        double[] bucketMass = w.bucketMass;
        Arrays.fill(bucketMass, 0);
        double total = 0;
        for (int i = 0; i < vocab; i++) {
            double weight = Math.exp(scaled[i]);
            total += weight;
            bucketMass[bucket(scaled[i])] += weight;
        }
        if (params.topP() < 1) {
            for (int head = firstHead(bucketMass, params.topP() * total); ; head++) {
                int n = collectHead(w, vocab, head);
                int keep = nucleus(w, n, total, n == vocab);
                if (keep > 0) {
                    return draw(w, keep);
                }
            }
        }
        double u = random.nextDouble() * total;
        for (int head = firstHead(bucketMass, u); ; head++) {
            int n = collectHead(w, vocab, head);
            double acc = 0;
            int lastWeighted = 0;
            for (int r = 0; r < n; r++) {
                double weight = Math.exp(scaled[order[r]]);
                acc += weight;
                if (u < acc) {
                    return order[r];
                }
                lastWeighted = weight > 0 ? r : lastWeighted;
            }
            if (n == vocab) {
                // u is just below the total, summed in another order: the last token that has any weight
                return order[lastWeighted];
            }
        }
    }

    /**
     * The bucket of a score (log-weight relative to the best token, ≤ 0), floor(-4 · score): 0 for (-1/4, 0] (and
     * NaN, ranked first), b for (-(b+1)/4, -b/4], the last for everything at or below -64. Monotone, so the tokens
     * of buckets 0..h are a prefix of the draw order, ties included.
     */
    private static int bucket(double score) {
        double b = -score * BUCKETS_PER_UNIT;
        return b > 0 ? (int) Math.min(b, LAST_BUCKET) : 0;
    }

    /** The first head (last bucket included) whose mass reaches {@code mass}, with a margin for rounding. */
    private static int firstHead(double[] bucketMass, double mass) {
        double cum = 0;
        for (int b = 0; b < LAST_BUCKET; b++) {
            cum += bucketMass[b];
            if (cum > mass * (1 + 1e-9)) {
                return b;
            }
        }
        return LAST_BUCKET;
    }

    /**
     * The number of most likely tokens of {@code order[0..n)} whose mass (weights / sum) first reaches top_p; n when
     * {@code complete} and it never does (rounding), -1 when the head is incomplete and does not reach it.
     */
    private int nucleus(SamplerScratch w, int n, double sum, boolean complete) {
        double mass = 0;
        for (int r = 0; r < n; r++) {
            mass += Math.exp(w.scaled[w.order[r]]) / sum;
            if (mass >= params.topP()) {
                return r + 1;
            }
        }
        return complete ? n : -1;
    }

    /** One draw among {@code order[0..keep)}, the most likely first. */
    private int draw(SamplerScratch w, int keep) {
        double[] scaled = w.scaled;
        int[] order = w.order;
        double sum = 0;
        for (int r = 0; r < keep; r++) {
            sum += Math.exp(scaled[order[r]]);
        }
        double u = random.nextDouble() * sum;
        double acc = 0;
        for (int r = 0; r < keep; r++) {
            acc += Math.exp(scaled[order[r]]);
            if (u < acc) {
                return order[r];
            }
        }
        return order[keep - 1];
    }

    /** The tokens of buckets 0..head into {@code order}, sorted; their count. */
    private static int collectHead(SamplerScratch w, int vocab, int head) {
        int n = 0;
        for (int i = 0; i < vocab; i++) {
            if (bucket(w.scaled[i]) <= head) {
                w.order[n++] = i;
            }
        }
        sortDescending(w, n);
        return n;
    }

    /**
     * The order of the draw: higher score first, equal scores (-0.0 equal to 0.0) by token id; NaN first, as
     * Double.compare ranks it.
     */
    private static int compare(double a, double b) {
        return a == b ? 0 : Double.compare(a, b);
    }

    /** The k-th largest score (quickselect on a copy). */
    private static double kthLargest(SamplerScratch w, int vocab, int k) {
        double[] a = w.work;
        System.arraycopy(w.scaled, 0, a, 0, vocab);
        int lo = 0;
        int hi = vocab - 1;
        int target = k - 1;
        while (lo < hi) {
            double pivot = a[(lo + hi) >>> 1];
            int i = lo;
            int j = hi;
            while (i <= j) {
                while (compare(a[i], pivot) > 0) {
                    i++;
                }
                while (compare(a[j], pivot) < 0) {
                    j--;
                }
                if (i <= j) {
                    double t = a[i];
                    a[i++] = a[j];
                    a[j--] = t;
                }
            }
            if (target <= j) {
                hi = j;
            } else if (target >= i) {
                lo = i;
            } else {
                break;
            }
        }
        return a[target];
    }

    /**
     * Sorts {@code order[0..n)}, collected in token-id order, by descending score: a stable merge sort, so equal
     * scores keep the id order.
     */
    private static void sortDescending(SamplerScratch w, int n) {
        double[] scaled = w.scaled;
        int[] order = w.order;
        int[] src = order;
        int[] dst = w.merge;
        for (int width = 1; width < n; width *= 2) {
            for (int lo = 0; lo < n; lo += 2 * width) {
                int mid = Math.min(lo + width, n);
                int hi = Math.min(lo + 2 * width, n);
                int i = lo;
                int j = mid;
                for (int out = lo; out < hi; out++) {
                    boolean left = j >= hi || (i < mid && compare(scaled[src[i]], scaled[src[j]]) >= 0);
                    dst[out] = left ? src[i++] : src[j++];
                }
            }
            int[] t = src;
            src = dst;
            dst = t;
        }
        if (src != order) {
            System.arraycopy(src, 0, order, 0, n);
        }
    }

    /**
     * The first maximum, as torch.argmax.
     *
     * @throws IllegalStateException when a logit is NaN or +Inf, or none is finite: the model's arithmetic broke, and
     *                               a token picked from such a row would be a wrong one (a NaN compares below
     *                               everything and would be skipped)
     */
    public static int argmax(float[] logits, int off, int n) {
        int best = 0;
        float bestV = logits[off];
        // NaN is tracked in the same pass, without a branch: the check costs no second pass over the vocabulary.
        boolean nan = bestV != bestV;
        for (int i = 1; i < n; i++) {
            float v = logits[off + i];
            nan |= v != v;
            if (v > bestV) {
                bestV = v;
                best = i;
            }
        }
        if (nan || !Float.isFinite(bestV)) {
            throw notFinite(logits, off, n);
        }
        return best;
    }

    /** Names the first NaN or +Inf of a row (a second pass, on the failure path only). */
    private static IllegalStateException notFinite(float[] logits, int off, int n) {
        for (int i = 0; i < n; i++) {
            float v = logits[off + i];
            if (Float.isNaN(v) || v == Float.POSITIVE_INFINITY) {
                return new IllegalStateException("logits are not finite (" + v + " at token id " + i + ")");
            }
        }
        return new IllegalStateException("logits are not finite (every one of the " + n + " is -Infinity)");
    }
}
