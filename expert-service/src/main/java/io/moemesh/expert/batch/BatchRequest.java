package io.moemesh.expert.batch;

import io.moemesh.expert.backend.BatchInput;

/**
 * One ExpertBatch message in domain terms (not yet validated against the model or the assignment).
 *
 * @param epoch placement epoch the caller routed under; 0 = no epoch check
 * @param out   where the outputs go ([tokens, hidden] floats, overwritten: the caller may reuse arrays), or null
 *              for a new array
 */
public record BatchRequest(long epoch, BatchInput input, float[] out) {

    /** A request whose outputs go to a new array. */
    public BatchRequest(long epoch, BatchInput input) {
        this(epoch, input, null);
    }
}
