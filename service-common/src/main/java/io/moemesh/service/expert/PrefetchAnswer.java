package io.moemesh.service.expert;

/**
 * What an instance did with a {@link PrefetchHints} (expert.proto {@code PrefetchResponse}); the three counts
 * add up to the number of hints.
 *
 * @param queued          hints for assigned, not resident experts, queued for loading
 * @param alreadyResident hints for experts already resident
 * @param ignored         hints for experts not assigned to the instance, unknown experts, under an epoch it does
 *                        not serve, or beyond its loader's queue
 */
public record PrefetchAnswer(int queued, int alreadyResident, int ignored) {
}
