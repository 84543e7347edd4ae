package io.moemesh.cli.chaos;

import java.time.Duration;

/**
 * What a chaos run does.
 *
 * @param streams         concurrent greedy Generate streams, each starting its next request when one finishes
 * @param duration        how long requests are started and kills scheduled (the run stops earlier once
 *                        {@code maxKills} kills recovered and {@code warmup} more passed); longer than {@code warmup},
 *                        so that there is time for the first kill (the goals need at least one)
 * @param killEvery       time between kills; a kill waits until the previous victim carries traffic again (one
 *                        instance down at a time)
 * @param warmup          load before the first kill (and after the last one, when {@code maxKills} ends the run)
 * @param maxKills        0 = kill until the duration is over
 * @param seed            victim order: every instance once per round, in a seeded random order
 * @param maxTokens       tokens per request
 * @param recoveryTimeout how long a killed instance may take to be restarted, report SERVING and carry traffic
 */
public record ChaosPlan(int streams, Duration duration, Duration killEvery, Duration warmup, int maxKills, long seed,
                        int maxTokens, Duration recoveryTimeout) {
    public ChaosPlan {
        if (streams < 1 || streams > 256) {
            throw new IllegalArgumentException("--streams must be in [1, 256], got " + streams);
        }
        if (duration.isNegative() || duration.isZero()) {
            throw new IllegalArgumentException("--duration must be > 0 s, got " + duration.toSeconds());
        }
        if (killEvery.isNegative() || killEvery.isZero()) {
            throw new IllegalArgumentException("--kill-every must be > 0 s, got " + killEvery.toSeconds());
        }
        if (warmup.isNegative()) {
            throw new IllegalArgumentException("--warmup must be >= 0 s, got " + warmup.toSeconds());
        }
        // The first kill comes after the warm-up and only while the duration lasts, and the goals need one: a run
        // that cannot kill would only ever report "goals NOT met" after starting a whole mesh.
        if (duration.compareTo(warmup) <= 0) {
            throw new IllegalArgumentException("--duration (" + duration.toSeconds() + " s) must exceed --warmup ("
                    + warmup.toSeconds() + " s): the first kill comes after the warm-up, and a run needs at least one");
        }
        if (maxKills < 0) {
            throw new IllegalArgumentException("--kills must be >= 0, got " + maxKills);
        }
        if (maxTokens < 1 || maxTokens > 4096) {
            throw new IllegalArgumentException("--max-tokens must be in [1, 4096], got " + maxTokens);
        }
    }
}
