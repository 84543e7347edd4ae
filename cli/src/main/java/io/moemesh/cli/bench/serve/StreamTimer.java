package io.moemesh.cli.bench.serve;

import java.util.Arrays;

/**
 * Timestamps one streamed response the way vLLM's {@code async_request_openai_completions} does: the first
 * chunk carrying choices sets TTFT, every later one appends its gap to ITL, and the latency ends at the last
 * such chunk (the usage chunk and {@code [DONE]} do not count). One thread per timer.
 */
public final class StreamTimer {
    private final long startNanos;
    private long firstNanos = -1;
    private long lastNanos;
    private long[] itl = new long[16];
    private int itlCount;
    private int chunks;

    /** @param startNanos {@link System#nanoTime()} just before the request was sent */
    public StreamTimer(long startNanos) {
        this.startNanos = startNanos;
    }

    /** A chunk carrying generated tokens (choices[0] / token_ids) arrived at {@code nowNanos}. */
    public void onChunk(long nowNanos) {
        if (firstNanos < 0) {
            firstNanos = nowNanos;
        } else {
            if (itlCount == itl.length) {
                itl = Arrays.copyOf(itl, itlCount * 2);
            }
            itl[itlCount++] = nowNanos - lastNanos;
        }
        lastNanos = nowNanos;
        chunks++;
    }

    public int chunks() {
        return chunks;
    }

    /** The stream ended normally; without any chunk it still fails, as in vLLM ("Never received a valid chunk"). */
    public RequestOutcome finish(int promptTokens, int outputTokens) {
        if (firstNanos < 0) {
            return RequestOutcome.failed("never received a chunk with generated tokens", promptTokens);
        }
        return new RequestOutcome(true, "", firstNanos - startNanos, lastNanos - startNanos,
                Arrays.copyOf(itl, itlCount), promptTokens, outputTokens);
    }
}
