package io.moemesh.kvcache.attend;

import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import java.nio.FloatBuffer;
import java.util.Arrays;

/**
 * {@link BlockAttention}'s attention for several query tokens at once, over consecutive blocks of one chain handed
 * in one at a time, in order ({@link #add}), so that a caller holds one block at a time however many the chain has.
 * Why: a block holds every layer's K/V (4 MiB for Mixtral at 16 tokens) while attention reads one layer's, so an
 * Attend that first read all its blocks (up to 65,536 per call) into a list could run the heap out on its own.
 *
 * <p>Per query token and head it keeps the online softmax's state between blocks — the running maximum score, the
 * sum of exponentials relative to it and the weighted value sum, in double — which is the state
 * {@link BlockAttention}'s single pass keeps between positions. Each position is folded in with the same operations
 * in the same order, so the result is bit-for-bit that pass's over the whole list: no float rounding between blocks,
 * as there would be in merging per-block {@link PartialAttention}s. The state is {@code (headDim + 2)} doubles per
 * token and head (8 MiB at the Attend maximum of 256 tokens × 32 heads × 128), whatever the number of blocks.
 *
 * <p>Not thread-safe: one call's accumulator.
 */
public final class StreamingAttention {
    private final float[] queries;
    private final int numHeads;
    private final KvLayout layout;
    private final int layer;
    private final int[] visible;
    private final float scale;
    private final int maxVisible;
    /** Per token and head ([token][head]): the running maximum score and the sum of exp(score − maximum). */
    private final double[] max;
    private final double[] sum;
    /** Per token and head ([token][head][headDim]): Σ exp(score − maximum) · v. */
    private final double[] acc;
    private long blocks;

    /**
     * @param queries  [tokens][numHeads][headDim] row-major, post-RoPE
     * @param numHeads query heads: a positive multiple of the layout's kvHeads
     * @param layer    the layer whose K/V are used
     * @param visible  per query token, how many leading positions of the chain it sees (≥ 0: the causal mask and
     *                 a partly filled last block); its length is the number of tokens
     * @param scale    softmax scale (finite, positive)
     * @throws IllegalArgumentException naming the field when a shape or value does not fit
     */
    public StreamingAttention(float[] queries, int numHeads, KvLayout layout, int layer, int[] visible, float scale) {
        int dim = layout.headDim();
        if (numHeads <= 0 || numHeads % layout.kvHeads() != 0) {
            throw new IllegalArgumentException("numHeads must be a positive multiple of kvHeads " + layout.kvHeads()
                    + ", got " + numHeads);
        }
        if (queries.length != (long) visible.length * numHeads * dim) {
            throw new IllegalArgumentException("query must have tokens · numHeads · headDim = "
                    + (long) visible.length * numHeads * dim + " floats, got " + queries.length);
        }
        if (layer < 0 || layer >= layout.layers()) {
            throw new IllegalArgumentException("layer must be in [0, " + layout.layers() + "), got " + layer);
        }
        if (!(scale > 0) || !Float.isFinite(scale)) {
            throw new IllegalArgumentException("scale must be finite and positive, got " + scale);
        }
        int most = 0;
        for (int t = 0; t < visible.length; t++) {
            if (visible[t] < 0) {
                throw new IllegalArgumentException("visible[" + t + "] must be >= 0, got " + visible[t]);
            }
            most = Math.max(most, visible[t]);
        }
        this.queries = queries;
        this.numHeads = numHeads;
        this.layout = layout;
        this.layer = layer;
        this.visible = visible.clone();
        this.scale = scale;
        this.maxVisible = most;
        int states = visible.length * numHeads;
        this.max = new double[states];
        Arrays.fill(max, Double.NEGATIVE_INFINITY);
        this.sum = new double[states];
        this.acc = new double[states * dim];
    }

    /**
     * Folds in the chain's next block (the first call's is the chain's block 0 here, positions 0 .. B − 1). The
     * block is not kept: only the state it updated is.
     *
     * @throws IllegalArgumentException when the block is not of this layout
     */
    public void add(KvBlock block) {
        if (!block.layout().equals(layout)) {
            throw new IllegalArgumentException("block " + block.key() + " has " + block.layout() + ", not " + layout);
        }
        int bt = layout.blockTokens();
        long from = blocks * bt;
        blocks++;
        if (from >= maxVisible) {
            return; // no token sees this block
        }
        int dim = layout.headDim();
        int group = numHeads / layout.kvHeads();
        FloatBuffer k = block.tensor(layer, false);
        FloatBuffer v = block.tensor(layer, true);
        for (int t = 0; t < visible.length; t++) {
            int positions = (int) Math.min(bt, visible[t] - from);
            for (int h = 0; h < numHeads && positions > 0; h++) {
                int g = h / group;
                int state = t * numHeads + h;
                int q0 = state * dim;
                double m = max[state];
                double s0 = sum[state];
                for (int j = 0; j < positions; j++) {
                    int base = (g * bt + j) * dim;
                    double s = 0;
                    for (int d = 0; d < dim; d++) {
                        s += (double) queries[q0 + d] * k.get(base + d);
                    }
                    s *= scale;
                    // Online softmax: rescale what was summed when a new maximum appears (flash-attention).
                    if (s > m) {
                        double c = Math.exp(m - s);
                        s0 *= c;
                        for (int d = 0; d < dim; d++) {
                            acc[q0 + d] *= c;
                        }
                        m = s;
                    }
                    double w = Math.exp(s - m);
                    s0 += w;
                    for (int d = 0; d < dim; d++) {
                        acc[q0 + d] += w * v.get(base + d);
                    }
                }
                max[state] = m;
                sum[state] = s0;
            }
        }
    }

    /** Blocks {@link #add}ed so far. */
    public long blocks() {
        return blocks;
    }

    /**
     * The partial of query token {@code token} over its visible positions.
     *
     * @throws IllegalStateException when fewer blocks were added than the token's visible positions span
     */
    public PartialAttention result(int token) {
        int dim = layout.headDim();
        if (visible[token] > blocks * layout.blockTokens()) {
            throw new IllegalStateException("token " + token + " sees " + visible[token] + " positions, but only "
                    + blocks + " blocks of " + layout.blockTokens() + " tokens were added");
        }
        PartialAttention out = PartialAttention.empty(numHeads, dim);
        if (visible[token] == 0) {
            return out;
        }
        for (int h = 0; h < numHeads; h++) {
            int state = token * numHeads + h;
            for (int d = 0; d < dim; d++) {
                out.output()[h * dim + d] = (float) (acc[state * dim + d] / sum[state]);
            }
            out.lse()[h] = (float) (max[state] + Math.log(sum[state]));
        }
        return out;
    }
}
