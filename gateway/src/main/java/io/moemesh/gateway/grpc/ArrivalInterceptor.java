package io.moemesh.gateway.grpc;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.moemesh.gateway.serving.ServingClock;

/**
 * Notes when a call started (its headers arrived) in the call's Context: a Generate's TTFT and E2E count from there
 * (docs/metrics.md), so the wait for its message, its parsing, tokenization and admission are included. Must run
 * first of the server's interceptors (last in the list given to {@code ServerInterceptors.intercept}).
 */
public final class ArrivalInterceptor implements ServerInterceptor {
    private static final Context.Key<Long> ARRIVAL = Context.key("moemesh-arrival-nanos");
    private final ServingClock clock;

    public ArrivalInterceptor(ServingClock clock) {
        this.clock = clock;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                        ServerCallHandler<Q, R> next) {
        return Contexts.interceptCall(Context.current().withValue(ARRIVAL, clock.getAsLong()), call, headers, next);
    }

    /** {@link System#nanoTime()} when the current call started; now outside a call this interceptor saw. */
    static long arrivalNanos() {
        Long nanos = ARRIVAL.get();
        return nanos == null ? System.nanoTime() : nanos;
    }
}
