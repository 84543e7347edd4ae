package io.moemesh.model.engine;

/**
 * One layer's request to {@link RemoteAttention} and the buffers its answer goes into: the step rows whose
 * sequence has a remote prefix, in row order (a sequence's rows are consecutive and in position order, so an
 * implementation sends one call per sequence, or one for all), each row's prefix length R and position, their
 * queries, and the outputs and log-sum-exps to fill. Owned by the engine and reused across layers and steps (its
 * arrays may be longer than {@link #count()} rows); valid only between {@link RemoteAttention#start} and the end
 * of {@link RemoteAttention#await}.
 */
public final class RemoteAttentionBatch {
    private final int heads;
    private final int headDim;
    private StepContext step;
    private int layer;
    private int count;
    private int[] rows = new int[0];
    private int[] prefixes = new int[0];
    private float[] queries = new float[0];
    private float[] output = new float[0];
    private float[] lse = new float[0];

    RemoteAttentionBatch(int heads, int headDim) {
        this.heads = heads;
        this.headDim = headDim;
    }

    /** Grows the buffers to {@code n} rows and starts a new step's batch of none. */
    void reset(StepContext step, int n) {
        if (rows.length < n) {
            int m = Math.max(n, 2 * rows.length);
            rows = new int[m];
            prefixes = new int[m];
            queries = new float[m * heads * headDim];
            output = new float[m * heads * headDim];
            lse = new float[m * heads];
        }
        this.step = step;
        this.count = 0;
    }

    void add(int row, int prefix) {
        rows[count] = row;
        prefixes[count] = prefix;
        count++;
    }

    void layer(int layer) {
        this.layer = layer;
    }

    /** The step the rows belong to (sequence, position, tenant of each row). */
    public StepContext step() {
        return step;
    }

    /** Decoder layer, 0-based. */
    public int layer() {
        return layer;
    }

    /** Rows in this batch (at least 1). */
    public int count() {
        return count;
    }

    /** Query heads per row (the model's attention heads; KV head of head h is h / (heads / kv_heads)). */
    public int heads() {
        return heads;
    }

    public int headDim() {
        return headDim;
    }

    /** The step row of batch row i. */
    public int row(int i) {
        return rows[i];
    }

    public long seqId(int i) {
        return step.seqId(rows[i]);
    }

    /** The position of batch row i's query in its sequence (it attends to positions ≤ this one). */
    public int position(int i) {
        return step.position(rows[i]);
    }

    /** R of batch row i's sequence: the partial covers positions [0, R), all of them visible (R ≤ position). */
    public int prefix(int i) {
        return prefixes[i];
    }

    /** Softmax scale of the scores, 1 / sqrt(head_dim) (transformers' eager attention). */
    public float scale() {
        return (float) (1.0 / Math.sqrt(headDim));
    }

    /**
     * [count, heads, headDim] float32 queries, post-RoPE (and after q_norm where the model has it), row-major:
     * read-only.
     */
    public float[] queries() {
        return queries;
    }

    /**
     * [count, heads, headDim] to fill: per row and head, {@code Σ_j exp(s_j − lse) · v_j} over positions j < R,
     * with {@code s_j = scale · q · k_j}.
     */
    public float[] output() {
        return output;
    }

    /** [count, heads] to fill: {@code lse = log Σ_{j < R} exp(s_j)}, natural log, finite. */
    public float[] lse() {
        return lse;
    }
}
