package io.moemesh.service.expert;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Tells a stream whose peer stopped reading from one that is only busy, by what a stopped reader causes: messages
 * wait for the transport (the stream is not ready) and nothing moves for {@code bound}. Not a count of messages
 * sent while not ready: gRPC calls a stream not ready whenever more than 32 KiB wait (one large message does that)
 * or before it is set up, so a step's burst of large messages to an instance that reads normally is not ready for
 * most of the burst and must never be refused. What counts as movement: the transport drained what waited (gRPC's
 * onReady), or a reply arrived (the instance takes one message per answer, so it is reading).
 *
 * <p>{@link #progressed} from any thread; the rest under the owner's lock (its send lock).
 */
final class StallGuard {
    /** What the owner does after {@link #sending}, {@link #sent} or {@link #checkDue}. */
    enum Verdict {
        /** Nothing: the stream drains, or a check is already scheduled. */
        FINE,
        /** Schedule {@link #checkDue} after {@link #checkDelayNanos}: messages wait and the clock runs. */
        CHECK_LATER,
        /** Nothing moved for the bound while messages waited: the peer stopped reading; end the stream. */
        STALLED
    }

    private final long boundNanos;
    private final AtomicLong progress = new AtomicLong();
    /** Whether the stream is being timed: it was not ready at the last send or check. */
    private boolean timing;
    /** When the timed wait began, and the progress count then: any movement since restarts the clock. */
    private long since;
    private long progressAtSince;
    /** A check is scheduled: the owner schedules at most one at a time per stream. */
    private boolean checkScheduled;

    StallGuard(long boundNanos) {
        this.boundNanos = boundNanos;
    }

    /** The transport drained (onReady) or a reply arrived. Any thread. */
    void progressed() {
        progress.incrementAndGet();
    }

    /** A message is about to be sent; {@code ready}: the stream's isReady() now. */
    Verdict sending(boolean ready, long nowNanos) {
        return observe(ready, nowNanos);
    }

    /**
     * A message was just handed to the transport; {@code ready}: the stream's isReady() now. A send that itself makes
     * the stream not ready (the last before the windows fill) starts the clock here: looked at only before sending,
     * its message would wait untimed, and unfreed, until some later send.
     */
    Verdict sent(boolean ready, long nowNanos) {
        return observe(ready, nowNanos);
    }

    /** The scheduled check ran; {@code ready}: the stream's isReady() now. */
    Verdict checkDue(boolean ready, long nowNanos) {
        checkScheduled = false;
        return observe(ready, nowNanos);
    }

    /** How long after {@code nowNanos} the clock started at the last verdict reaches the bound. */
    long checkDelayNanos(long nowNanos) {
        return Math.max(0, since + boundNanos - nowNanos);
    }

    private Verdict observe(boolean ready, long nowNanos) {
        if (ready) {
            // At most gRPC's 32 KiB wait: nothing to time.
            timing = false;
            return Verdict.FINE;
        }
        long p = progress.get();
        if (!timing || p != progressAtSince) {
            timing = true;
            since = nowNanos;
            progressAtSince = p;
        } else if (nowNanos - since >= boundNanos) {
            return Verdict.STALLED;
        }
        if (checkScheduled) {
            return Verdict.FINE;
        }
        // A check even if nothing more is sent: a stopped reader's stream is then ended and its buffers freed by
        // the check, not only by the next call.
        checkScheduled = true;
        return Verdict.CHECK_LATER;
    }
}
