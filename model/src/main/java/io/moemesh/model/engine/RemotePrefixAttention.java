package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import java.util.Set;
import java.util.TreeSet;

/**
 * The engine's side of {@link RemoteAttention}: checks each sequence's remote prefix, hands a layer's remote rows'
 * queries to the implementation before the local attention (so its call overlaps it), and merges the remote
 * partials into the local ones afterwards (the exact log-sum-exp merge of flash-decoding's split-K, {@link
 * Attention#merge}). Any failure becomes a {@link RemoteAttentionException} naming the layer and the sequences: those
 * whose partial failed when that is known (the implementation said so, or their partial is not a number), else all.
 */
final class RemotePrefixAttention {
    private final RemoteAttention remote;
    private final int heads;
    private final int headDim;
    private final int qDim;

    RemotePrefixAttention(RemoteAttention remote, ModelConfig c) {
        this.remote = remote;
        this.heads = c.numHeads();
        this.headDim = c.headDim();
        this.qDim = c.qDim();
    }

    /**
     * The sequence's remote prefix R, checked against what the engine can compute: a block boundary at or before
     * the step's first position (the step writes its own keys locally), and a {@link RemoteAttention} to ask.
     */
    int prefix(KvCache cache, SequenceStep s) {
        int prefix = cache.remotePrefix(s.seqId());
        if (prefix == 0) {
            return 0;
        }
        if (prefix < 0 || prefix % cache.blockTokens() != 0 || prefix > s.startPos()) {
            throw new IllegalStateException("sequence " + s.seqId() + ": remote prefix " + prefix
                    + " must be a multiple of the block size " + cache.blockTokens()
                    + " and at most the step's start position " + s.startPos());
        }
        if (remote == RemoteAttention.NONE) {
            throw new IllegalStateException("sequence " + s.seqId() + " has a remote prefix of " + prefix
                    + " positions but the engine has no RemoteAttention to attend over it");
        }
        return prefix;
    }

    /** Hands the remote rows' queries ({@code q}: [rows, qDim], post-RoPE) to the {@link RemoteAttention}. */
    void start(RemoteAttentionBatch rb, float[] q, int l) {
        for (int i = 0; i < rb.count(); i++) {
            System.arraycopy(q, rb.row(i) * qDim, rb.queries(), i * qDim, qDim);
        }
        rb.layer(l);
        try {
            remote.start(rb);
        } catch (RuntimeException e) {
            throw failure(rb, l, e.getMessage(), e);
        }
    }

    /** Waits for the remote partials and merges each into its row's local partial, in place in {@code attn}/{@code lse}. */
    void merge(RemoteAttentionBatch rb, float[] attn, float[] localLse, int l) {
        try {
            remote.await(rb);
        } catch (RuntimeException e) {
            throw failure(rb, l, e.getMessage(), e);
        }
        float[] out = rb.output();
        float[] lse = rb.lse();
        for (int i = 0; i < rb.count(); i++) {
            // A non-finite partial would turn the row's attention into NaN: fail the step instead of a wrong token.
            for (int j = i * heads; j < (i + 1) * heads; j++) {
                if (!Float.isFinite(lse[j])) {
                    throw failure(rb, l, "lse of sequence " + rb.seqId(i) + " head " + (j - i * heads) + " is "
                            + lse[j], null, Set.of(rb.seqId(i)));
                }
            }
            for (int j = i * heads * headDim; j < (i + 1) * heads * headDim; j++) {
                if (!Float.isFinite(out[j])) {
                    throw failure(rb, l, "output of sequence " + rb.seqId(i) + " is " + out[j], null,
                            Set.of(rb.seqId(i)));
                }
            }
            int r = rb.row(i);
            Attention.merge(out, i * heads * headDim, lse, i * heads, attn, r * heads * headDim, localLse,
                    r * heads, heads, headDim);
        }
    }

    /**
     * The step's failure: the sequences whose partial failed are those {@code cause} names when it is a {@link
     * RemoteAttentionException} naming some of the batch's (the implementation knew), else not known.
     */
    private static RemoteAttentionException failure(RemoteAttentionBatch rb, int l, String what, Throwable cause) {
        Set<Long> failed = cause instanceof RemoteAttentionException r ? r.sequences() : Set.of();
        return failure(rb, l, what, cause, failed);
    }

    /**
     * The step's failure, naming {@code failed} (the scheduler ends only those and runs the step again) when they
     * are the batch's, else every sequence of the batch (the scheduler ends the whole step's).
     */
    private static RemoteAttentionException failure(RemoteAttentionBatch rb, int l, String what, Throwable cause,
                                                    Set<Long> failed) {
        TreeSet<Long> seqs = new TreeSet<>();
        for (int i = 0; i < rb.count(); i++) {
            seqs.add(rb.seqId(i));
        }
        if (failed.isEmpty() || !seqs.containsAll(failed)) {
            failed = Set.of();
        } else {
            seqs = new TreeSet<>(failed);
        }
        return new RemoteAttentionException("layer " + l + ": remote attention over the prefixes of sequences "
                + seqs + " failed: " + what, cause, failed);
    }
}
