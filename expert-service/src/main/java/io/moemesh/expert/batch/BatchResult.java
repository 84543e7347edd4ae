package io.moemesh.expert.batch;

/**
 * A computed batch.
 *
 * @param out          [tokens, hidden] float32 Σ w · FFN(x) per token
 * @param queueNanos   from arrival (decoded) to the start of compute
 * @param computeNanos expert FFNs and summation
 * @param servingEpoch the epoch the instance serves when the batch was accepted
 */
public record BatchResult(int layer, int tokens, float[] out, long queueNanos, long computeNanos, long servingEpoch) {
}
