package io.moemesh.gateway.serving;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;

/**
 * Decides whether a request may join: a bounded waiting queue (beyond it: overloaded, retry later), per-tenant
 * rate limits (a token bucket per tenant: {@code ratePerSecond} refill, {@code burst} capacity), limits on
 * prompt length and max_tokens, and a drain switch for shutdown.
 */
public final class AdmissionControl {
    private final int maxWaiting;
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
     * @param ratePerSecond requests per second per tenant; ≤ 0 disables rate limiting
     */
    public AdmissionControl(int maxWaiting, double ratePerSecond, double burst, int maxPromptTokens, int maxNewTokens,
                            IntSupplier waiting, LongSupplier nanoClock) {
        this.maxWaiting = maxWaiting;
        this.ratePerSecond = ratePerSecond;
        this.burst = Math.max(1, burst);
        this.maxPromptTokens = maxPromptTokens;
        this.maxNewTokens = maxNewTokens;
        this.waiting = waiting;
        this.nanoClock = nanoClock;
    }

    /** Throws when the request may not join now; the message says which limit and by how much. */
    public void admit(String tenant, int promptTokens, int maxTokens) {
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
        if (waiting.getAsInt() >= maxWaiting) {
            throw new OverloadedException("the waiting queue is full (" + maxWaiting + " requests); retry later", 1);
        }
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

    public void startDraining() {
        draining = true;
    }

    public boolean draining() {
        return draining;
    }
}
