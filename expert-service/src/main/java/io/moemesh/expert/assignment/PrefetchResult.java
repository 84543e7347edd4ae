package io.moemesh.expert.assignment;

/** Counts of a Prefetch call: queued for loading, already resident, ignored (not assigned, unknown, stale). */
public record PrefetchResult(int queued, int alreadyResident, int ignored) {
}
