package io.moemesh.gateway.serving;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;

/**
 * Decides whether a request may join: a bounded waiting queue (beyond it: overloaded, retry later), per-tenant
 * rate limits (a token bucket per tenant: {@code ratePerSecond} refill, {@code burst} capacity), limits on
 * prompt length and max_tokens, and a drain switch for shutdown.
 *
 * <p>The rate is charged when a request arrives ({@link #chargeRate}, by the public APIs before its body is read),
 * not at {@link #admit}: a tenant past its rate must be refused before its body takes a large-request permit and is
 * parsed and tokenized, or a loop of large requests refused after tokenizing (a max_tokens past the context, say)
 * would keep the shared intake busy for every other tenant at no cost. So every request that arrives counts against
 * its tenant's rate, whether it is then served or refused.
 *
 * <p>The queue's length is what {@code waiting} says (the scheduler's count: submitted and not yet running,
 * preempted ones included) plus the {@link Reservation}s of requests admitted here and not yet submitted: a
 * request is counted from its admission on, so concurrent submitters cannot all see room for one and all join.
 */
public final class AdmissionControl {
    private final int maxWaiting;
    /** Admitted here, not yet in {@code waiting}'s count; guarded by this (checked together with that count). */
    private int reserved;
    private final double ratePerSecond;
    private final double burst;
    private final int maxPromptTokens;
    private final int maxNewTokens;
    private final IntSupplier waiting;
    private final LongSupplier nanoClock;
    private final Map<String, Bucket> buckets = new ConcurrentHashMap<>();
    private volatile boolean draining;

    private static final class Bucket {
        double tokens;
        long last;
    }

    /**
     * @param ratePerSecond requests per second per tenant, finite and ≥ 0; 0 disables rate limiting
     * @param burst         a tenant's bucket size, finite and ≥ 1
     */
    public AdmissionControl(int maxWaiting, double ratePerSecond, double burst, int maxPromptTokens, int maxNewTokens,
                            IntSupplier waiting, LongSupplier nanoClock) {
        checkRateLimit(ratePerSecond, burst, "the per-tenant rate", "the per-tenant burst");
        this.maxWaiting = maxWaiting;
        this.ratePerSecond = ratePerSecond;
        this.burst = burst;
        this.maxPromptTokens = maxPromptTokens;
        this.maxNewTokens = maxNewTokens;
        this.waiting = waiting;
        this.nanoClock = nanoClock;
    }

    /**
     * The per-tenant rate limit's rule, the one place it is checked (the gateway's properties check theirs with it at
     * startup): a negative rate, a NaN or a burst below one request would switch the limit off or change it silently.
     *
     * @param rateName  how the caller names the rate in the message (its property)
     * @param burstName how the caller names the burst
     * @throws IllegalArgumentException naming the value that breaks it
     */
    public static void checkRateLimit(double ratePerSecond, double burst, String rateName, String burstName) {
        if (!(ratePerSecond >= 0) || Double.isInfinite(ratePerSecond)) {
            throw new IllegalArgumentException(rateName + " must be a finite number ≥ 0 (0 = no limit), got "
                    + ratePerSecond);
        }
        if (!(burst >= 1) || Double.isInfinite(burst)) {
            throw new IllegalArgumentException(burstName + " must be a finite number ≥ 1, got " + burst);
        }
    }

    /**
     * A waiting slot taken by {@link #admit}: released once the request's sequence is in the scheduler's count (it
     * was submitted), or was not submitted after all. Releasing twice releases once.
     */
    public interface Reservation {
        void release();
    }

    /**
     * Throws when the request may not join now; the message says which limit and by how much. Otherwise takes a
     * waiting slot, which the caller releases once the request is submitted (or will not be). The tenant's rate is not
     * looked at here: its request was charged when it arrived ({@link #chargeRate}).
     */
    public Reservation admit(String tenant, int promptTokens, int maxTokens) {
        if (draining) {
            throw new DrainingException();
        }
        if (promptTokens > maxPromptTokens) {
            throw new IllegalArgumentException("prompt of " + promptTokens + " tokens exceeds the limit of "
                    + maxPromptTokens + " tokens");
        }
        if (maxTokens > maxNewTokens) {
            throw new IllegalArgumentException("max_tokens " + maxTokens + " exceeds the limit of " + maxNewTokens);
        }
        return reserve();
    }

    private Reservation reserve() {
        synchronized (this) {
            // Checked again under the lock: once startDraining returned, no reservation is taken, so a drain that
            // then sees none reserved and nothing in the engine has nothing left to wait for.
            if (draining) {
                throw new DrainingException();
            }
            // Under the lock: a slot released after its submit is in waiting's count by the time another admit
            // reads it here. The scheduler only lowers that count meanwhile (or a preemption raises it).
            if (waiting.getAsInt() + reserved >= maxWaiting) {
                throw new OverloadedException("the waiting queue is full (" + maxWaiting + " requests); retry later", 1);
            }
            reserved++;
        }
        AtomicBoolean released = new AtomicBoolean();
        return () -> {
            if (released.compareAndSet(false, true)) {
                synchronized (this) {
                    reserved--;
                }
            }
        };
    }

    /**
     * Counts an arriving request against its tenant's rate: takes a token from the tenant's bucket, or throws when
     * it is empty. Cheap (no I/O, one small lock per tenant): the public APIs call it before they read a body.
     *
     * @throws OverloadedException naming the tenant and its rate, with the seconds until a token is back
     */
    public void chargeRate(String tenant) {
        if (ratePerSecond > 0) {
            Bucket b = buckets.computeIfAbsent(tenant, t -> {
                Bucket nb = new Bucket();
                nb.tokens = burst;
                nb.last = nanoClock.getAsLong();
                return nb;
            });
            synchronized (b) {
                long now = nanoClock.getAsLong();
                b.tokens = Math.min(burst, b.tokens + (now - b.last) / 1e9 * ratePerSecond);
                b.last = now;
                if (b.tokens < 1) {
                    int wait = (int) Math.ceil((1 - b.tokens) / ratePerSecond);
                    throw new OverloadedException("tenant " + tenant + " exceeds its rate limit of " + ratePerSecond
                            + " requests/s", Math.max(1, wait));
                }
                b.tokens -= 1;
            }
        }
    }

    /** From now on every admission is refused ({@link DrainingException}); reservations taken before stay. */
    public synchronized void startDraining() {
        draining = true;
    }

    /**
     * Requests admitted and not yet submitted to the engine (their {@link Reservation} not released): a drain waits
     * for them as for the engine's sequences. Their submit counts them in the engine before the release.
     */
    public synchronized int reserved() {
        return reserved;
    }

    public boolean draining() {
        return draining;
    }
}
