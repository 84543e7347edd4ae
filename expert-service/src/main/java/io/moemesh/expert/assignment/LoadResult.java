package io.moemesh.expert.assignment;

/**
 * The outcome of one LoadAssignment call (any stage).
 *
 * @param epoch         the call's epoch
 * @param loadedCount   experts of that epoch's assignment resident after the call (fewer than assigned when they
 *                      exceed the memory budget: the rest are paged in on use); 0 for an abort
 * @param residentBytes expert weight bytes resident after the call
 * @param servingEpoch  the epoch served after the call
 * @param preparedEpoch the epoch prepared after the call, 0 when none
 */
public record LoadResult(long epoch, int loadedCount, long residentBytes, long servingEpoch, long preparedEpoch) {
}
