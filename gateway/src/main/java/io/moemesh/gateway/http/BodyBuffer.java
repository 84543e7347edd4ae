package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.gateway.serving.OverloadedException;
import java.util.Arrays;

/**
 * One body's bytes as they arrive, held to the limits before anything parses them, also without a Content-Length
 * (chunked): past {@code maxBytes} 413; a body declared large, or counted past the large size, needs a large-request
 * permit before more of it is taken in (429 when none is free; its tenant's rate was charged before its first byte,
 * {@link PublicApiFilter}); every byte takes its share of {@link HeldBodyBytes} (429 past it). A refusal is thrown
 * (OpenAiException, OverloadedException); the caller then {@link #release()}s what the body took. Used by one
 * thread at a time ({@link BodyIntake} serializes its callbacks).
 */
final class BodyBuffer {
    private static final IntakeLimiter.Permit NO_PERMIT = () -> { };
    private final BodyLimits limits;
    private final long declared;
    private byte[] bytes;
    private int count;
    /** Bytes read from the connection and offered to {@link #add}, also those of an add that was refused. */
    private long taken;
    private long held;
    private IntakeLimiter.Permit permit;
    private boolean done;

    /** @param declared the request's Content-Length, or -1 when it has none */
    BodyBuffer(BodyLimits limits, long declared) {
        this.limits = limits;
        this.declared = declared;
        // Grown as bytes arrive: a declared length that never comes holds nothing.
        this.bytes = new byte[(int) Math.min(16_384, declared > 0 ? declared : 16_384)];
    }

    /** Before the first byte: a body declared large needs its permit before anything of it is taken in. */
    void start() {
        if (limits.intake().isLarge(declared)) {
            admitLarge(declared);
        }
    }

    private void admitLarge(long size) {
        // A generation request's tenant was charged before (PublicApiFilter): one past its rate never gets here.
        permit = limits.intake().admit(size);
    }

    /** Takes in {@code n} bytes of {@code buf} from {@code off}, or throws the refusal. */
    void add(byte[] buf, int off, int n) {
        // Read from the connection whether or not they are taken: what is left of the body is after them.
        taken += n;
        if (count + (long) n > limits.maxBytes()) {
            throw new OpenAiException(413, "invalid_request_error", "request_too_large", null,
                    "the request body exceeds the limit of " + limits.maxBytes() + " bytes");
        }
        if (!limits.held().take(n)) {
            throw new OverloadedException("the request bodies being received hold " + limits.held().held()
                    + " bytes, the most " + HeldBodyBytes.SETTING + " (" + limits.held().max() + ") allows; retry "
                    + "later", 1);
        }
        held += n;
        if (permit == null && limits.intake().isLarge(count + (long) n)) {
            admitLarge(count + (long) n);
        }
        if (count + n > bytes.length) {
            long grown = Math.max(count + (long) n, 2L * bytes.length);
            bytes = Arrays.copyOf(bytes, (int) Math.min(grown, declared > 0 ? declared : limits.maxBytes()));
        }
        System.arraycopy(buf, off, bytes, count, n);
        count += n;
    }

    int count() {
        return count;
    }

    /** Bytes of the body read from the connection so far, the refused ones included. */
    long taken() {
        return taken;
    }

    /**
     * The whole body, handed over with its permit and held bytes (released when it is closed); this buffer lets go of
     * them, so that once the body is closed nothing keeps its array while the response is under way.
     */
    ReceivedBody finish() {
        done = true;
        ReceivedBody received = new ReceivedBody(bytes, count, permit == null ? NO_PERMIT : permit, limits.held());
        bytes = null;
        return received;
    }

    /** Gives back what the body took, unless it was handed over; twice is once. */
    void release() {
        if (!done) {
            done = true;
            if (permit != null) {
                permit.close();
            }
            limits.held().release(held);
            bytes = null;
        }
    }
}
