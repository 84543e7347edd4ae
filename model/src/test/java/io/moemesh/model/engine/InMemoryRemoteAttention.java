package io.moemesh.model.engine;

import java.util.HashMap;
import java.util.Map;

/**
 * The kvcache-service's side of {@link RemoteAttention} in memory: per sequence and layer the keys and values of
 * positions [0, R), computing the partial with plain double-precision loops in {@link #await} (the call is "in
 * flight" between start and await). Can be told to fail at a layer.
 */
class InMemoryRemoteAttention implements RemoteAttention {
    private final int kvHeads;
    /** seqId → [layer][R · kvDim] keys and values. */
    private final Map<Long, float[][]> keys = new HashMap<>();
    private final Map<Long, float[][]> values = new HashMap<>();
    int calls;
    int startedLayer = -1;
    RuntimeException failStartAt;
    int failLayer = -1;
    RuntimeException failAwaitAt;
    boolean nanLse;

    InMemoryRemoteAttention(int kvHeads) {
        this.kvHeads = kvHeads;
    }

    /** Keeps positions [0, r) of {@code seqId}'s K/V, copied from a cache that holds the whole sequence. */
    void copyPrefix(long seqId, KvCache full, int layers, int kvDim, int r) {
        float[][] k = new float[layers][r * kvDim];
        float[][] v = new float[layers][r * kvDim];
        int[] table = full.blockTable(seqId);
        int b = full.blockTokens();
        for (int l = 0; l < layers; l++) {
            for (int p = 0; p < r; p++) {
                int src = (table[p / b] * b + p % b) * kvDim;
                System.arraycopy(full.keys(l), src, k[l], p * kvDim, kvDim);
                System.arraycopy(full.values(l), src, v[l], p * kvDim, kvDim);
            }
        }
        keys.put(seqId, k);
        values.put(seqId, v);
    }

    @Override
    public void start(RemoteAttentionBatch batch) {
        calls++;
        startedLayer = batch.layer();
        if (failStartAt != null && batch.layer() == failLayer) {
            throw failStartAt;
        }
    }

    @Override
    public void await(RemoteAttentionBatch batch) {
        if (batch.layer() != startedLayer) {
            throw new AssertionError("await of layer " + batch.layer() + " after start of " + startedLayer);
        }
        if (failAwaitAt != null && batch.layer() == failLayer) {
            throw failAwaitAt;
        }
        int heads = batch.heads();
        int d = batch.headDim();
        int group = heads / kvHeads;
        int kvDim = kvHeads * d;
        for (int i = 0; i < batch.count(); i++) {
            float[] k = keys.get(batch.seqId(i))[batch.layer()];
            float[] v = values.get(batch.seqId(i))[batch.layer()];
            int r = batch.prefix(i);
            if (r > batch.position(i) || r * kvDim > k.length) {
                throw new AssertionError("row " + i + ": prefix " + r + " at position " + batch.position(i));
            }
            for (int h = 0; h < heads; h++) {
                int qo = (i * heads + h) * d;
                int ko = (h / group) * d;
                double[] s = new double[r];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < r; j++) {
                    double dot = 0;
                    for (int x = 0; x < d; x++) {
                        dot += (double) batch.queries()[qo + x] * k[j * kvDim + ko + x];
                    }
                    s[j] = dot * batch.scale();
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < r; j++) {
                    s[j] = Math.exp(s[j] - max);
                    sum += s[j];
                }
                for (int x = 0; x < d; x++) {
                    double acc = 0;
                    for (int j = 0; j < r; j++) {
                        acc += s[j] * v[j * kvDim + ko + x];
                    }
                    batch.output()[qo + x] = (float) (acc / sum);
                }
                batch.lse()[i * heads + h] = nanLse ? Float.NaN : (float) (max + Math.log(sum));
            }
        }
    }
}
