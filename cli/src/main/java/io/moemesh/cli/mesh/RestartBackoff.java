package io.moemesh.cli.mesh;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

/**
 * When the supervisor may start a service that exited, like Kubernetes' CrashLoopBackOff: the first restart is
 * immediate, each further exit without a long enough run in between doubles the wait ({@code initial},
 * 2 × initial, ... up to {@code max}); a run of at least {@code resetAfter} forgets the earlier crashes. Kubernetes
 * uses 10 s doubling to 5 min and resets after 10 min; a local mesh on one machine restarts sooner.
 * Not thread-safe: the supervisor's loop is its one caller.
 */
final class RestartBackoff {
    private final long initialNanos;
    private final long maxNanos;
    private final long resetAfterNanos;
    private final Map<String, Track> tracks = new HashMap<>();

    private static final class Track {
        long pid;
        long startedAt;
        int crashes;
        long exitSeenPid = -1;
        long notBefore;
    }

    RestartBackoff(Duration initial, Duration max, Duration resetAfter) {
        if (initial.isNegative() || initial.isZero() || max.compareTo(initial) < 0 || resetAfter.isNegative()) {
            throw new IllegalArgumentException("restart backoff needs 0 < initial <= max and resetAfter >= 0, got "
                    + initial + ", " + max + ", " + resetAfter);
        }
        this.initialNanos = initial.toNanos();
        this.maxNanos = max.toNanos();
        this.resetAfterNanos = resetAfter.toNanos();
    }

    static RestartBackoff standard() {
        return new RestartBackoff(Duration.ofSeconds(1), Duration.ofSeconds(30), Duration.ofSeconds(60));
    }

    /** The service runs as {@code pid} (seen alive at {@code now}). */
    void running(String service, long pid, long now) {
        Track t = tracks.computeIfAbsent(service, k -> new Track());
        if (t.pid != pid) {
            t.pid = pid;
            t.startedAt = now;
        }
    }

    /**
     * The service's process {@code pid} is gone at {@code now}: returns when it may be started again (≤ now =
     * at once). Asking again for the same exit returns the same instant.
     */
    long exited(String service, long pid, long now) {
        Track t = tracks.computeIfAbsent(service, k -> new Track());
        if (t.exitSeenPid == pid) {
            return t.notBefore;
        }
        boolean ranLong = t.pid == pid && now - t.startedAt >= resetAfterNanos;
        if (ranLong) {
            t.crashes = 0;
        }
        long wait = t.crashes == 0 ? 0 : Math.min(maxNanos, initialNanos << Math.min(30, t.crashes - 1));
        t.crashes++;
        t.exitSeenPid = pid;
        t.notBefore = now + wait;
        return t.notBefore;
    }

    /**
     * A restart after the exit last seen by {@link #exited} did not take at {@code now} (the process could not be
     * started, or could not be recorded and was killed again): counted as one more exit in a row, so the next try
     * waits the doubled wait (at least {@code initial}) rather than the next poll. Returns when it may be tried.
     */
    long failedStart(String service, long now) {
        Track t = tracks.computeIfAbsent(service, k -> new Track());
        long wait = Math.min(maxNanos, initialNanos << Math.min(30, Math.max(0, t.crashes - 1)));
        t.crashes++;
        t.notBefore = now + wait;
        return t.notBefore;
    }

    /** Consecutive exits counted for the service (0 once it ran long enough). */
    int crashes(String service) {
        Track t = tracks.get(service);
        return t == null ? 0 : t.crashes;
    }
}
