package io.moemesh.expert.batch;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongSupplier;

/** The instance's load as DescribeInstance and the metrics report it. */
public final class LoadTracker {
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicInteger openStreams = new AtomicInteger();
    private final TokenRate tokens = new TokenRate();
    private final LongSupplier nanoClock;

    public LoadTracker(LongSupplier nanoClock) {
        this.nanoClock = nanoClock;
    }

    void batchArrived() {
        inFlight.incrementAndGet();
    }

    void batchAnswered() {
        inFlight.decrementAndGet();
    }

    void tokensProcessed(int n) {
        tokens.add(n, nanoClock.getAsLong());
    }

    public void streamOpened() {
        openStreams.incrementAndGet();
    }

    public void streamClosed() {
        openStreams.decrementAndGet();
    }

    /** ExpertBatch requests received and not yet answered, over all streams. */
    public int inFlightBatches() {
        return inFlight.get();
    }

    public int openStreams() {
        return openStreams.get();
    }

    public double tokensPerSecond() {
        return tokens.perSecond(nanoClock.getAsLong());
    }
}
