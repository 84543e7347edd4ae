package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.kernel.Parallel;
import io.moemesh.model.kernel.VectorOps;
import java.util.Arrays;

/**
 * Causal grouped-query attention over the paged KV cache (transformers' eager attention: scores scaled by
 * head_dim^-0.5, float32 softmax, weighted sum of values). Query head h reads KV head h / (heads / kv_heads).
 */
final class Attention {
    private final int heads;
    private final int kvHeads;
    private final int headDim;
    private final int kvDim;
    private final int group;
    private final float scale;
    private final ThreadLocal<float[]> scores = ThreadLocal.withInitial(() -> new float[256]);

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
        float[] keys = cache.keys(layer);
        float[] values = cache.values(layer);
        int b = cache.blockTokens();
        long work = (long) heads * headDim * 2 * (pos[tokens - 1] + 1);
        Parallel.forRange(tokens * heads, 1, work, (from, to) -> {
            for (int i = from; i < to; i++) {
                int t = i / heads;
                int h = i % heads;
                one(keys, values, b, tables[t], pos[t], q, t * heads * headDim + h * headDim, (h / group) * headDim,
                        out);
            }
        });
    }

    private void one(float[] keys, float[] values, int b, int[] table, int pos, float[] q, int qo, int kvo,
                     float[] out) {
        int n = pos + 1;
        float[] s = scores.get();
        if (s.length < n) {
            s = new float[Math.max(n, s.length * 2)];
            scores.set(s);
        }
        for (int j = 0; j < n; j++) {
            int ko = (table[j / b] * b + j % b) * kvDim + kvo;
            s[j] = VectorOps.dot(q, qo, keys, ko, headDim) * scale;
        }
        VectorOps.softmax(s, 0, n);
        Arrays.fill(out, qo, qo + headDim, 0f);
        for (int j = 0; j < n; j++) {
            int vo = (table[j / b] * b + j % b) * kvDim + kvo;
            VectorOps.axpy(s[j], values, vo, out, qo, headDim);
        }
    }
}
