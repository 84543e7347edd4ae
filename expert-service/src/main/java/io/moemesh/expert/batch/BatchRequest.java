package io.moemesh.expert.batch;

import io.moemesh.expert.backend.BatchInput;

/**
 * One ExpertBatch message in domain terms (not yet validated against the model or the assignment).
 *
 * @param epoch placement epoch the caller routed under; 0 = no epoch check
 */
public record BatchRequest(long epoch, BatchInput input) {
}
