package io.moemesh.service.grpc;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A server-wide budget of request bytes that calls whose client sends one message (unary, server streaming) hold
 * before their half-close. grpc-java reads such a call's message as it arrives, returning the HTTP/2 flow-control
 * credit for it, and keeps it until the half-close (the handler gets it then): neither the stream's window nor the
 * per-connection call limit bounds what many such calls hold together. {@link CallReset}'s stream tracers, on a
 * server built with this budget ({@code GrpcServerLifecycle#resettableCalls(HeldRequestBytes, HalfCloseBound)}), count each such
 * call's message bytes from the first read until its half-close or end; a call whose bytes would take the total past
 * {@link #max()} is closed RESOURCE_EXHAUSTED naming {@link #setting()} and its stream reset at once, giving its
 * bytes back ({@link #resets()} counts those calls).
 */
public final class HeldRequestBytes {
    private final long max;
    private final String setting;
    private final AtomicLong held = new AtomicLong();
    private final AtomicLong resets = new AtomicLong();

    /**
     * @param max     bytes all such calls may hold at once, ≥ 1
     * @param setting the property that sets it, named in errors and in the status of a call reset past it
     * @throws IllegalArgumentException naming {@code setting} when {@code max} < 1
     */
    public HeldRequestBytes(long max, String setting) {
        if (max < 1) {
            throw new IllegalArgumentException(setting + " must be ≥ 1, got " + max);
        }
        this.max = max;
        this.setting = setting;
    }

    /** Adds {@code bytes}; false when the total is now past {@link #max()} (the caller then gives its bytes back). */
    boolean take(long bytes) {
        return held.addAndGet(bytes) <= max;
    }

    void release(long bytes) {
        held.addAndGet(-bytes);
    }

    void countReset() {
        resets.incrementAndGet();
    }

    /** Bytes held now by calls not yet half-closed. */
    public long held() {
        return held.get();
    }

    /** Calls reset because their bytes would have taken the total past {@link #max()}. */
    public long resets() {
        return resets.get();
    }

    public long max() {
        return max;
    }

    public String setting() {
        return setting;
    }
}
