package io.moemesh.gateway.dispatch;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;
import io.github.resilience4j.circuitbreaker.IllegalStateTransitionException;
import io.moemesh.service.expert.EpochRefusedException;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.InstanceClient;
import io.moemesh.service.expert.InstanceHealth;
import io.moemesh.service.expert.PrefetchAnswer;
import io.moemesh.service.expert.PrefetchHints;
import io.moemesh.service.grpc.TensorArrayPool;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

/**
 * An instance behind a Resilience4j circuit breaker (an instance that keeps failing is skipped until a probe
 * succeeds) and a semaphore bulkhead (at most N calls in flight, so one slow instance cannot absorb every
 * request). Retry on another replica is the dispatcher's job: it knows the replicas.
 *
 * <p>How an instance comes back: an OPEN breaker moves to HALF_OPEN by itself after {@code openWait}
 * (Resilience4j's automatic transition: the dispatcher only routes to available instances, so no caller would
 * ever ask an OPEN breaker for permission and move it on), or at once when the instance's gRPC health turns
 * SERVING again. In HALF_OPEN the instance is available again: the next call is the probe, and one successful
 * probe closes the breaker. While its health says NOT_SERVING or UNREACHABLE the instance is skipped whatever
 * its breaker says, so no request pays a failed call for an instance known to be down.
 *
 * <p>What the breaker counts: a call the instance failed, and a call cancelled because it did not answer in time. Not
 * counted: a call the instance refused for its placement epoch ({@link EpochRefusedException}: the gateway routed
 * under an epoch the mesh does not serve, e.g. while it could not apply the router's newest one; every instance
 * refuses then, and counting it would open every healthy breaker and keep them open after the epoch applies), a call
 * refused here without being sent ({@link Refused}), and a call {@link #withdraw withdrawn} because another replica
 * answered for it first.
 */
public final class ResilientInstance {
    private final InstanceClient client;
    private final CircuitBreaker breaker;
    private final Bulkhead bulkhead;
    private final CallObserver observer;
    private final List<Runnable> onClose = new CopyOnWriteArrayList<>();
    /** Completed (and replaced) whenever a call in flight here ends: see {@link #nextAnswer()}. */
    private final AtomicReference<CompletableFuture<Void>> nextAnswer = new AtomicReference<>(new CompletableFuture<>());
    /**
     * Calls in flight a {@link #lagging()} instance counts as besides its own in {@link #load()}: far more than a real
     * load (64 pairs each in the pickers' view), few enough that no sum overflows.
     */
    public static final int LAGGING_LOAD = 1 << 16;
    /** Set by {@link #markLagging} on the engine thread, cleared when a call ends by itself (a transport thread). */
    private volatile boolean lagging;
    private volatile long laggingUntil;

    /**
     * A call this instance refused without sending it. {@link #busy()}: refused only because the calls it lets
     * through at once are in flight (the half-open breaker's single probe, or a full bulkhead), so the same call
     * fits once one of them ends ({@link #nextAnswer()}); not busy: the breaker is open, the instance is not to
     * be used now. Neither is recorded against the breaker: nothing reached the instance.
     */
    public static final class Refused extends RejectedExecutionException {
        private final boolean busy;

        Refused(String message, boolean busy) {
            super(message);
            this.busy = busy;
        }

        public boolean busy() {
            return busy;
        }
    }

    /** Sees every call's latency and outcome (metrics). */
    @FunctionalInterface
    public interface CallObserver {
        CallObserver NONE = (id, nanos, error) -> { };

        void observe(String instanceId, long nanos, Throwable error);
    }

    /** The client's shared-memory arena slots in use ({@link InstanceClient#arenaSlotsInUse}). */
    public int arenaSlotsInUse() {
        return client.arenaSlotsInUse();
    }

    /** The client's calls through a shared-memory arena ({@link InstanceClient#arenaCalls}). */
    public long arenaCalls() {
        return client.arenaCalls();
    }

    public ResilientInstance(InstanceClient client, int maxConcurrent, float failureRate, Duration openWait) {
        this(client, maxConcurrent, failureRate, openWait, CallObserver.NONE);
    }

    public ResilientInstance(InstanceClient client, int maxConcurrent, float failureRate, Duration openWait,
                             CallObserver observer) {
        this.client = client;
        this.observer = observer;
        this.breaker = CircuitBreaker.of(client.id(), CircuitBreakerConfig.custom()
                .ignoreException(ResilientInstance::epochRefused)
                .failureRateThreshold(failureRate)
                .slidingWindowSize(10)
                .minimumNumberOfCalls(3)
                .waitDurationInOpenState(openWait)
                .automaticTransitionFromOpenToHalfOpenEnabled(true)
                .permittedNumberOfCallsInHalfOpenState(1)
                .build());
        this.bulkhead = Bulkhead.of(client.id(), BulkheadConfig.custom()
                .maxConcurrentCalls(maxConcurrent).maxWaitDuration(Duration.ZERO).build());
        client.onHealthChange(this::healthChanged);
    }

    public String id() {
        return client.id();
    }

    /**
     * Calls may be routed here: the breaker lets calls through (CLOSED, or HALF_OPEN for a probe) and the
     * instance's health does not say it is down.
     */
    public boolean available() {
        return client.health().usable() && switch (breaker.getState()) {
            case OPEN, FORCED_OPEN -> false;
            default -> true;
        };
    }

    /** The breaker is HALF_OPEN: the next call is a probe of an instance that failed before. */
    public boolean probing() {
        return breaker.getState() == CircuitBreaker.State.HALF_OPEN;
    }

    /**
     * The client's calls in flight (a call counts until it is answered or cancelled), plus {@link #LAGGING_LOAD} while
     * the instance {@link #lagging() lags}: the replica pickers then choose another usable replica whenever there is
     * one, instead of the instance whose calls it just gave up on (they left the client's count when cancelled).
     */
    public int load() {
        return client.inFlight() + (lagging() ? LAGGING_LOAD : 0);
    }

    /**
     * A call here missed its hedge delay (the dispatch sent its rows to another replica too): the instance
     * {@link #lagging() lags} until one of its calls ends by itself (answered or failed: it is not wedged), or until
     * {@code untilNanos} ({@link System#nanoTime()}: the deadline that call was sent with) passes. Past that, it is a
     * candidate like any other again: a wedged instance then misses another hedge delay and another call is counted
     * against its breaker, which opens in the end; one that is back answers and stops lagging.
     */
    public void markLagging(long untilNanos) {
        long until = laggingUntil;
        if (!lagging || untilNanos - until > 0) {
            laggingUntil = untilNanos;
        }
        lagging = true;
    }

    /** A call here missed its hedge delay, none ended by itself since, and that call's deadline is ahead. */
    public boolean lagging() {
        return lagging && System.nanoTime() - laggingUntil < 0;
    }

    public CircuitBreaker.State state() {
        return breaker.getState();
    }

    public InstanceHealth health() {
        return client.health();
    }

    private void healthChanged(InstanceHealth health) {
        if (health == InstanceHealth.SERVING && breaker.getState() == CircuitBreaker.State.OPEN) {
            try {
                breaker.transitionToHalfOpenState();
            } catch (IllegalStateTransitionException e) {
                // The automatic transition (or a probe) moved the breaker on in between: nothing left to do.
            }
        }
    }

    /**
     * Sends prefetch hints straight to the client, past the breaker and the bulkhead: a hint is advice, so its
     * failure must never open the breaker of an instance that computes fine, nor take a slot a call needs.
     */
    public CompletableFuture<PrefetchAnswer> prefetch(PrefetchHints hints) {
        return client.prefetch(hints);
    }

    /**
     * Sends a call through the breaker and the bulkhead. Cancelling the returned future (the dispatcher does
     * when the step deadline passes, or when the call missed its hedge delay and its step completed on another
     * replica) counts as a failed call and frees its bulkhead slot and, in HALF_OPEN, the probe's permission at
     * once: otherwise an instance that never answers would hold them for good. {@link #withdraw} frees them without
     * counting a failure.
     */
    public CompletableFuture<float[]> call(ExpertCall call) {
        if (!breaker.tryAcquirePermission()) {
            CircuitBreaker.State state = breaker.getState();
            // HALF_OPEN: its one probe is in flight (or just closed the breaker): busy, not down.
            boolean busy = state != CircuitBreaker.State.OPEN && state != CircuitBreaker.State.FORCED_OPEN;
            return CompletableFuture.failedFuture(new Refused("circuit breaker of " + client.id() + " is " + state,
                    busy));
        }
        if (!bulkhead.tryAcquirePermission()) {
            breaker.releasePermission();
            return CompletableFuture.failedFuture(new Refused(
                    client.id() + " has " + bulkhead.getBulkheadConfig().getMaxConcurrentCalls() + " calls in flight",
                    true));
        }
        long start = System.nanoTime();
        CompletableFuture<float[]> sent;
        try {
            sent = client.call(call);
        } catch (RuntimeException e) {
            sent = CompletableFuture.failedFuture(e);
        }
        AtomicBoolean recorded = new AtomicBoolean();
        CompletableFuture<float[]> result = new CompletableFuture<>();
        sent.whenComplete((r, e) -> {
            if (record(recorded, start, e)) {
                lagging = false; // it ends calls by itself: whatever it missed before, it is not wedged
            }
            if (e == null) {
                if (!result.complete(r)) {
                    // Cancelled or withdrawn meanwhile: nobody reads the reply, and the array is this call's alone.
                    TensorArrayPool.shared().give(r);
                }
            } else {
                result.completeExceptionally(e);
            }
        });
        CompletableFuture<float[]> underlying = sent;
        result.whenComplete((r, e) -> {
            if (result.isCancelled()) {
                record(recorded, start, new TimeoutException(client.id() + " did not answer in time"));
                underlying.cancel(false);
            } else if (e instanceof Withdrawn) {
                if (recorded.compareAndSet(false, true)) {
                    bulkhead.onComplete();
                    breaker.releasePermission();
                    nextAnswer.getAndSet(new CompletableFuture<>()).complete(null);
                }
                underlying.cancel(false);
            }
        });
        return result;
    }

    /**
     * Ends a call whose answer is no longer wanted because another replica computed its rows first (a hedge that lost
     * the race): its bulkhead slot and breaker permission are given back as a cancellation would, but nothing is
     * recorded (the call was sent late, not answered late: no failure, no latency). Nothing happens to a call that
     * already completed.
     */
    public void withdraw(CompletableFuture<float[]> call) {
        call.completeExceptionally(new Withdrawn(client.id()));
    }

    /**
     * What a {@link #withdraw withdrawn} call completes with. Not a CancellationException: a future completed with one
     * counts as cancelled, and a cancelled call as a failure.
     */
    private static final class Withdrawn extends RuntimeException {
        Withdrawn(String id) {
            super("a call to " + id + " was withdrawn: another replica answered for it first");
        }
    }

    /** An epoch refusal, however wrapped: the gateway's placement is off, not the instance. */
    private static boolean epochRefused(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof EpochRefusedException) {
                return true;
            }
        }
        return false;
    }

    /** Records the call's end once; false when it was recorded already (cancelled, withdrawn or answered before). */
    private boolean record(AtomicBoolean recorded, long start, Throwable error) {
        if (!recorded.compareAndSet(false, true)) {
            return false;
        }
        bulkhead.onComplete();
        long took = System.nanoTime() - start;
        observer.observe(client.id(), took, error);
        if (error == null) {
            breaker.onSuccess(took, TimeUnit.NANOSECONDS);
        } else {
            // An epoch refusal only gives the permission back (ignoreException): see the class comment.
            breaker.onError(took, TimeUnit.NANOSECONDS, error);
        }
        // After the slot and the permission are back (and the breaker has moved on): a call refused as busy that
        // waited for this finds them free.
        nextAnswer.getAndSet(new CompletableFuture<>()).complete(null);
        return true;
    }

    /**
     * Completes when the next call in flight here ends (answered, failed, cancelled or withdrawn), after its bulkhead
     * slot and breaker permission are given back. Take it before a {@link #call} that may be refused as
     * {@link Refused#busy() busy}: the call that holds the slot then completes it, however soon it ends.
     */
    public CompletableFuture<Void> nextAnswer() {
        return nextAnswer.get();
    }

    /** Runs {@code action} when this instance is closed (e.g. to remove its metrics). */
    public void onClose(Runnable action) {
        onClose.add(action);
    }

    public void close() {
        client.close();
        onClose.forEach(Runnable::run);
    }
}
