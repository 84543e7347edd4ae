package io.moemesh.gateway.kvcache;

/**
 * Measured rates that decide whether a preempted sequence is swapped out (its KV restored from the kvcache-service
 * on resume) or recomputed: restore bandwidth of the service's {@code Lookup} + {@code Get} (bytes per second, the
 * call's fixed costs included, so small restores are judged slow as they are) and the engine's prefill throughput
 * (prefill tokens per second of the steps that had any). Restore bandwidth is an exponentially weighted moving average
 * of fetches ({@link #WEIGHT} for the newest); prefill throughput one of prefill tokens ({@link #prefilled}: a step
 * weighs by its prefill tokens, so a step timed mostly on its decode rows, with a prefill tail of a few tokens, barely
 * moves it; until {@link #PREFILL_MEMORY_TOKENS} tokens were seen, the mean of the steps' rates so weighed, so a
 * first step of a few tokens is not the starting point). Each 0 until measured. A restore that failed or timed out is a sample too ({@link #restoreFailed}), below
 * what recomputing costs, so a service that slowed down is no longer chosen at the rate it had when it was fast.
 * Thread-safe.
 */
public final class TransferRates {
    /** Weight of the newest fetch in the restore bandwidth's average. */
    static final double WEIGHT = 0.3;
    /**
     * Prefill tokens the prefill throughput's average remembers: a step of {@code n} prefill tokens moves it by
     * {@code 1 - e^(-n / PREFILL_MEMORY_TOKENS)} towards its own rate, as if each of its tokens were a sample.
     */
    static final double PREFILL_MEMORY_TOKENS = 1024;

    private double restoreBytesPerSecond;
    private double prefillTokensPerSecond;
    /** Prefill tokens sampled so far, up to {@link #PREFILL_MEMORY_TOKENS} (then the moving average takes over). */
    private long prefillTokensSeen;
    /** The sum of those samples' rates, each times its tokens. */
    private double prefillRateTokens;

    /** A fetch moved {@code bytes} of block payload in {@code nanos} (lookup included). */
    public synchronized void restored(long bytes, long nanos) {
        if (bytes > 0 && nanos > 0) {
            restoreBytesPerSecond = ewma(restoreBytesPerSecond, bytes * 1e9 / nanos);
        }
    }

    /**
     * A fetch that was to move {@code bytes} of block payload ({@code tokens} positions) failed, timed out or brought
     * nothing after {@code nanos} (the caller passes at least its timeout). What it cost is that time and then the
     * recompute of the positions anyway, so it is sampled as the bandwidth that would have cost as much: {@code bytes}
     * over {@code nanos} plus {@code tokens} at the measured prefill rate. Restoring at that rate is predicted slower
     * than recomputing, by construction: repeated failures pull the average below that (each closes {@link #WEIGHT}
     * of the gap) and turn {@link #restoreFaster} false; working fetches pull it back up.
     */
    public synchronized void restoreFailed(long bytes, long tokens, long nanos) {
        if (bytes <= 0 || nanos <= 0) {
            return;
        }
        double recompute = prefillTokensPerSecond > 0 ? tokens * 1e9 / prefillTokensPerSecond : 0;
        restoreBytesPerSecond = ewma(restoreBytesPerSecond, bytes * 1e9 / (nanos + recompute));
    }

    /**
     * A step with {@code prefillTokens} prompt (or recomputation) tokens took {@code nanos}, its decode rows included.
     * Its rate, {@code prefillTokens / nanos}, weighs by its tokens ({@link #PREFILL_MEMORY_TOKENS}), not one per step:
     * a recompute is prefilled in budget-sized chunks, so steps that were mostly prefill predict its speed, while a
     * step of many decode rows and a 2-token prefill tail charges the decode rows' time to those 2 tokens (20 tok/s
     * for a 100 ms step) and, weighed like the others, would make {@code auto} swap out sequences that recompute faster.
     * Until {@link #PREFILL_MEMORY_TOKENS} tokens were seen it is the mean of the samples, each weighed by its tokens:
     * an average started from its first sample alone would keep a 2-token first step's rate for about a thousand
     * tokens more.
     */
    public synchronized void prefilled(int prefillTokens, long nanos) {
        if (prefillTokens <= 0 || nanos <= 0) {
            return;
        }
        double sample = prefillTokens * 1e9 / nanos;
        if (prefillTokensSeen < PREFILL_MEMORY_TOKENS) {
            prefillTokensSeen += prefillTokens;
            prefillRateTokens += sample * prefillTokens;
            prefillTokensPerSecond = prefillRateTokens / prefillTokensSeen;
            return;
        }
        double weight = -Math.expm1(-prefillTokens / PREFILL_MEMORY_TOKENS);
        prefillTokensPerSecond += weight * (sample - prefillTokensPerSecond);
    }

    private static double ewma(double old, double sample) {
        return old == 0 ? sample : old + WEIGHT * (sample - old);
    }

    public synchronized double restoreBytesPerSecond() {
        return restoreBytesPerSecond;
    }

    public synchronized double prefillTokensPerSecond() {
        return prefillTokensPerSecond;
    }

    /**
     * Restoring {@code tokens} positions ({@code bytesPerToken} each on the wire) is predicted faster than
     * recomputing them; false while either rate is unmeasured (recompute is the safe default).
     */
    public synchronized boolean restoreFaster(long tokens, long bytesPerToken) {
        if (tokens <= 0 || restoreBytesPerSecond <= 0 || prefillTokensPerSecond <= 0) {
            return false;
        }
        return tokens * bytesPerToken / restoreBytesPerSecond < tokens / prefillTokensPerSecond;
    }
}
