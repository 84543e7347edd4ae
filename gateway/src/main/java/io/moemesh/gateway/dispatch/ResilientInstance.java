package io.moemesh.gateway.dispatch;

import io.github.resilience4j.bulkhead.Bulkhead;
import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.circuitbreaker.CircuitBreaker;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.InstanceClient;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * An instance behind a Resilience4j circuit breaker (an instance that keeps failing is skipped until a probe
 * succeeds) and a semaphore bulkhead (at most N calls in flight, so one slow instance cannot absorb every
 * request). Retry on another replica is the dispatcher's job: it knows the replicas.
 */
public final class ResilientInstance {
    private final InstanceClient client;
    private final CircuitBreaker breaker;
    private final Bulkhead bulkhead;
    private final CallObserver observer;

    /** Sees every call's latency and outcome (metrics). */
    @FunctionalInterface
    public interface CallObserver {
        CallObserver NONE = (id, nanos, error) -> { };

        void observe(String instanceId, long nanos, Throwable error);
    }

    public ResilientInstance(InstanceClient client, int maxConcurrent, float failureRate, Duration openWait) {
        this(client, maxConcurrent, failureRate, openWait, CallObserver.NONE);
    }

    public ResilientInstance(InstanceClient client, int maxConcurrent, float failureRate, Duration openWait,
                             CallObserver observer) {
        this.client = client;
        this.observer = observer;
        this.breaker = CircuitBreaker.of(client.id(), CircuitBreakerConfig.custom()
                .failureRateThreshold(failureRate)
                .slidingWindowSize(10)
                .minimumNumberOfCalls(3)
                .waitDurationInOpenState(openWait)
                .permittedNumberOfCallsInHalfOpenState(1)
                .build());
        this.bulkhead = Bulkhead.of(client.id(), BulkheadConfig.custom()
                .maxConcurrentCalls(maxConcurrent).maxWaitDuration(Duration.ZERO).build());
    }

    public String id() {
        return client.id();
    }

    /** Healthy enough to try: the breaker is not open. */
    public boolean available() {
        return breaker.getState() != CircuitBreaker.State.OPEN && breaker.getState() != CircuitBreaker.State.FORCED_OPEN;
    }

    public int load() {
        return client.inFlight();
    }

    public CircuitBreaker.State state() {
        return breaker.getState();
    }

    public CompletableFuture<float[]> call(ExpertCall call) {
        if (!breaker.tryAcquirePermission()) {
            return CompletableFuture.failedFuture(new RejectedExecutionException(
                    "circuit breaker of " + client.id() + " is " + breaker.getState()));
        }
        if (!bulkhead.tryAcquirePermission()) {
            breaker.releasePermission();
            return CompletableFuture.failedFuture(new RejectedExecutionException(
                    client.id() + " has " + bulkhead.getBulkheadConfig().getMaxConcurrentCalls() + " calls in flight"));
        }
        long start = System.nanoTime();
        CompletableFuture<float[]> f;
        try {
            f = client.call(call);
        } catch (RuntimeException e) {
            f = CompletableFuture.failedFuture(e);
        }
        return f.whenComplete((r, e) -> {
            bulkhead.onComplete();
            long took = System.nanoTime() - start;
            observer.observe(client.id(), took, e);
            if (e == null) {
                breaker.onSuccess(took, TimeUnit.NANOSECONDS);
            } else {
                breaker.onError(took, TimeUnit.NANOSECONDS, e);
            }
        });
    }

    public void close() {
        client.close();
    }
}
