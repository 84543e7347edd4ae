package io.moemesh.expert.batch;

/**
 * Tokens per second over the last 60 seconds, in one-second buckets (a ring indexed by the second), so the
 * rate an autoscaler reads does not jump with single batches. Thread-safe.
 */
public final class TokenRate {
    private static final int WINDOW = 60;
    private static final long SECOND = 1_000_000_000L;
    private final long[] counts = new long[WINDOW];
    private final long[] seconds = new long[WINDOW];

    public synchronized void add(long tokens, long nowNanos) {
        long sec = Math.floorDiv(nowNanos, SECOND);
        int i = (int) Math.floorMod(sec, WINDOW);
        if (seconds[i] != sec) {
            seconds[i] = sec;
            counts[i] = 0;
        }
        counts[i] += tokens;
    }

    /** Sum of the tokens of the last 60 whole-or-current seconds, divided by 60. */
    public synchronized double perSecond(long nowNanos) {
        long sec = Math.floorDiv(nowNanos, SECOND);
        long sum = 0;
        for (int i = 0; i < WINDOW; i++) {
            if (counts[i] != 0 && sec - seconds[i] < WINDOW && sec - seconds[i] >= 0) {
                sum += counts[i];
            }
        }
        return sum / (double) WINDOW;
    }
}
