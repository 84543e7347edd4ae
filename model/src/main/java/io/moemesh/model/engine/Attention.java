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
    private int blockTokens;
    private int items;

    Attention(ModelConfig c) {
        this.heads = c.numHeads();
        this.kvHeads = c.numKvHeads();
        this.headDim = c.headDim();
        this.kvDim = c.kvDim();
        this.group = heads / kvHeads;
        this.scale = (float) (1.0 / Math.sqrt(headDim));
    }

    /** Stores token t's rotated key and value at its position. */
    void write(KvCache cache, int layer, int[] table, int pos, float[] k, float[] v, int t) {
        int b = cache.blockTokens();
        int dst = (table[pos / b] * b + pos % b) * kvDim;
        System.arraycopy(k, t * kvDim, cache.keys(layer), dst, kvDim);
        System.arraycopy(v, t * kvDim, cache.values(layer), dst, kvDim);
    }

    /**
     * out[t] = attention of q[t] over positions [0, pos[t]] of its sequence, for all tokens of the step.
     *
     * @param tables block table of each token's sequence
     */
    void attend(KvCache cache, int layer, float[] q, int[][] tables, int[] pos, int tokens, float[] out) {
        this.keys = cache.keys(layer);
        this.values = cache.values(layer);
        this.q = q;
        this.out = out;
        this.tables = tables;
        this.pos = pos;
        this.blockTokens = cache.blockTokens();
        this.items = tokens * kvHeads;
        long work = 0;
        for (int t = 0; t < tokens; t++) {
            work += (long) (pos[t] + 1) * heads * headDim * 2;
        }
        next.set(0);
        int shares = Parallel.threads();
        Parallel.forRange(shares, 1, work / shares, this);
        this.keys = null;
        this.values = null;
        this.q = null;
        this.out = null;
        this.tables = null;
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
        int n = pos[t] + 1;
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
            for (int j = j0; j < j1; j++) {
                int ko = (base + j - j0) * kvDim + kvo;
                for (int g = 0; g < group; g++) {
                    s[g * n + j] = VectorOps.dot(q, qo + g * headDim, keys, ko, headDim) * scale;
                }
            }
        }
        for (int g = 0; g < group; g++) {
            float max = VectorOps.max(s, g * n, n);
            float sum = VectorOps.expShifted(s, g * n, n, max);
            VectorOps.divide(s, g * n, n, sum);
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
}
