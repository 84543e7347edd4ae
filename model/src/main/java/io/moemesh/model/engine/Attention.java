package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.kernel.Parallel;
import io.moemesh.model.kernel.VectorOps;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Causal grouped-query attention over the paged KV cache (transformers' eager attention: scores scaled by
 * head_dim^-0.5, float32 softmax, weighted sum of values). Query head h reads KV head h / (heads / kv_heads).
 *
 * <p>One work item is a (token, KV head) pair: the {@code heads / kv_heads} query heads that share a KV head
 * are computed together, so each key and value row is fetched from the cache once per item instead of once per
 * query head. Items are claimed dynamically, longest first (a prefill token at position p costs p + 1 rows), so
 * both cores finish together. The softmax exponentials are vectorised ({@link VectorOps#expShifted}). No
 * allocation once the score buffers have grown to the longest sequence. Not thread-safe: one per engine.
 *
 * <p>A token whose sequence has a remote prefix R ({@link KvCache#remotePrefix}) attends here only over the
 * positions [R, pos] its cache holds, and its per-head log-sum-exp is kept so that {@link #merge} can combine it
 * exactly with the partial over [0, R) that {@link RemoteAttention} returns. With R = 0 nothing else changes.
 */
final class Attention implements Parallel.RangeBody {
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final int kvDim;
    private final int group;
    private final float scale;
    private final AtomicInteger next = new AtomicInteger();
    /** Scores of one item, [group][positions], per parallel share. */
    private final float[][] scores = new float[Parallel.threads()][256];

    private float[] keys;
    private float[] values;
    private float[] q;
    private float[] out;
    private int[][] tables;
    private int[] pos;
    private int[] prefix;
    private float[] lse;
    private int blockTokens;
    private int items;

    Attention(ModelConfig c) {
        this(c.numHeads(), c.numKvHeads(), c.headDim());
    }

    Attention(int heads, int kvHeads, int headDim) {
        this.heads = heads;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.kvDim = kvHeads * headDim;
        this.group = heads / kvHeads;
        this.scale = (float) (1.0 / Math.sqrt(headDim));
    }

    /**
     * Stores token t's rotated key and value at its position, in a table that starts at position {@code prefix}
     * (the sequence's remote prefix R, a multiple of the block size; 0 when all of it is local).
     */
    void write(KvCache cache, int layer, int[] table, int prefix, int pos, float[] k, float[] v, int t) {
        int b = cache.blockTokens();
        int dst = (table[(pos - prefix) / b] * b + pos % b) * kvDim;
        System.arraycopy(k, t * kvDim, cache.keys(layer), dst, kvDim);
        System.arraycopy(v, t * kvDim, cache.values(layer), dst, kvDim);
    }

    /**
     * out[t] = attention of q[t] over positions [prefix[t], pos[t]] of its sequence, for all tokens of the step;
     * for each token with prefix[t] &gt; 0 also lse[t·heads + h] = log Σ_j exp(s_j) over those positions.
     *
     * @param tables block table of each token's sequence, starting at position prefix[t]
     * @param prefix each token's remote prefix R (0: the whole sequence is local)
     */
    void attend(KvCache cache, int layer, float[] q, int[][] tables, int[] pos, int[] prefix, int tokens, float[] out,
                float[] lse) {
        this.keys = cache.keys(layer);
        this.values = cache.values(layer);
        this.q = q;
        this.out = out;
        this.tables = tables;
        this.pos = pos;
        this.prefix = prefix;
        this.lse = lse;
        this.blockTokens = cache.blockTokens();
        this.items = tokens * kvHeads;
        long work = 0;
        for (int t = 0; t < tokens; t++) {
            work += (long) (pos[t] + 1 - prefix[t]) * heads * headDim * 2;
        }
        next.set(0);
        int shares = Parallel.threads();
        Parallel.forRange(shares, 1, work / shares, this);
        this.keys = null;
        this.values = null;
        this.q = null;
        this.out = null;
        this.tables = null;
        this.lse = null;
    }

    /** Share s ∈ [from, to): claims items until none is left (a serial fallback runs every share here). */
    @Override
    public void run(int from, int to) {
        for (int share = from; share < to; share++) {
            int claimed;
            while ((claimed = next.getAndIncrement()) < items) {
                // Tokens come in position order within a sequence: walking items backwards does the long ones first.
                int item = items - 1 - claimed;
                item(share, item / kvHeads, item % kvHeads);
            }
        }
    }

    private void item(int share, int t, int kvh) {
        // Local index j is position prefix[t] + j: the table starts at the prefix, a block boundary.
        int remote = prefix[t];
        int n = pos[t] + 1 - remote;
        float[] s = scores[share];
        if (s.length < group * n) {
            s = new float[Math.max(group * n, 2 * s.length)];
            scores[share] = s;
        }
        int[] table = tables[t];
        int b = blockTokens;
        int qo = (t * heads + kvh * group) * headDim;
        int kvo = kvh * headDim;
        for (int j0 = 0; j0 < n; j0 += b) {
            int base = table[j0 / b] * b;
            int j1 = Math.min(n, j0 + b);
            int j = j0;
            for (; j + 4 <= j1; j += 4) { // four keys at once (consecutive rows of the block): the same bits
                int ko = (base + j - j0) * kvDim + kvo;
                for (int g = 0; g < group; g++) {
                    int o = g * n + j;
                    VectorOps.dot4(q, qo + g * headDim, keys, ko, kvDim, headDim, s, o);
                    s[o] *= scale;
                    s[o + 1] *= scale;
                    s[o + 2] *= scale;
                    s[o + 3] *= scale;
                }
            }
            for (; j < j1; j++) {
                int ko = (base + j - j0) * kvDim + kvo;
                for (int g = 0; g < group; g++) {
                    s[g * n + j] = VectorOps.dot(q, qo + g * headDim, keys, ko, headDim) * scale;
                }
            }
        }
        for (int g = 0; g < group; g++) {
            float max = VectorOps.max(s, g * n, n);
            float sum = VectorOps.expShifted(s, g * n, n, max);
            VectorOps.normalise(s, g * n, n, sum);
            if (remote > 0) {
                lse[t * heads + kvh * group + g] = max + (float) Math.log(sum);
            }
        }
        Arrays.fill(out, qo, qo + group * headDim, 0f);
        for (int j0 = 0; j0 < n; j0 += b) {
            int base = table[j0 / b] * b;
            int j1 = Math.min(n, j0 + b);
            for (int j = j0; j < j1; j++) {
                int vo = (base + j - j0) * kvDim + kvo;
                for (int g = 0; g < group; g++) {
                    VectorOps.axpy(s[g * n + j], values, vo, out, qo + g * headDim, headDim);
                }
            }
        }
    }

    /**
     * Merges partials over disjoint position sets, exactly up to rounding (the log-sum-exp merge of {@code
     * kvcache.v1}'s AttendRequest comment; flash-decoding's split-K reduction): per head, with
     * {@code m = max(lseA, lseB)}, {@code wA = exp(lseA − m)}, {@code wB = exp(lseB − m)},
     * {@code out = (wA · outA + wB · outB) / (wA + wB)}. Writes into partial B ({@code outB} from {@code ob},
     * {@code lseB} from {@code lb}), {@code heads} heads of {@code headDim}. Both lse must be finite (neither set
     * empty).
     */
    static void merge(float[] outA, int oa, float[] lseA, int la, float[] outB, int ob, float[] lseB, int lb,
                      int heads, int headDim) {
        for (int h = 0; h < heads; h++) {
            double a = lseA[la + h];
            double b = lseB[lb + h];
            double m = Math.max(a, b);
            double wa = Math.exp(a - m);
            double wb = Math.exp(b - m);
            double total = wa + wb;
            float fa = (float) (wa / total);
            float fb = (float) (wb / total);
            int ha = oa + h * headDim;
            int hb = ob + h * headDim;
            for (int d = 0; d < headDim; d++) {
                outB[hb + d] = fa * outA[ha + d] + fb * outB[hb + d];
            }
            lseB[lb + h] = (float) (m + Math.log(total));
        }
    }
}
