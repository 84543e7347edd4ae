package io.moemesh.expert.grpc;

import io.grpc.Context;
import io.grpc.ForwardingServerCall;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.moemesh.expert.metrics.ExpertMetrics;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Counts in {@code moemesh_expert_errors_total} a call of the ExpertService that something other than its handler
 * closed with a non-OK status: RequestParsingGuard, for a message that does not parse (INVALID_ARGUMENT) or a
 * compressed one that inflates past the size limit (RESOURCE_EXHAUSTED). Such a message ends its call without a
 * reply of its own, so neither BatchStream, which counts every ExpertBatch message it answers with a status, nor the
 * control calls' handler (Prefetch, LoadAssignment, DescribeInstance: ExpertGrpcService.unary counts the failures it
 * answers) ever sees it. The handlers' own closes are never counted here: a control call's failure is counted once,
 * by unary; a stream's end (completed, or ended at the service's stop with UNAVAILABLE) fails no message.
 *
 * <p>Two interceptors, because the guard closes the transport's call directly, past everything inside it:
 * {@link #outside()} goes around the guard and sees every close; {@link #handlerSide()} goes inside it, around the
 * handler, and marks the closes that are the handler's. A message over the transport's size limit is refused by
 * grpc-java before any interceptor (it cancels the stream with RESOURCE_EXHAUSTED and logs it at warning), so it is
 * not counted here.
 */
final class GuardCloseCounter {
    /** Set for a call's start by {@link #outside()}: whether its handler closed it. */
    private static final Context.Key<AtomicBoolean> CLOSED_BY_HANDLER = Context.key("moemesh-expert-closed-by-handler");

    private final ExpertMetrics metrics;

    GuardCloseCounter(ExpertMetrics metrics) {
        this.metrics = metrics;
    }

    /** Around the guard: counts a non-OK close the handler did not make. */
    ServerInterceptor outside() {
        return new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                               ServerCallHandler<Q, R> next) {
                AtomicBoolean byHandler = new AtomicBoolean();
                ServerCall<Q, R> counted = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
                    @Override
                    public void close(Status status, Metadata trailers) {
                        if (!status.isOk() && !byHandler.get()) {
                            metrics.error(status.getCode().name());
                        }
                        super.close(status, trailers);
                    }
                };
                // Only for the start: the guard and the handler are built in it (no per-message context switch).
                Context attached = Context.current().withValue(CLOSED_BY_HANDLER, byHandler);
                Context previous = attached.attach();
                try {
                    return next.startCall(counted, headers);
                } finally {
                    attached.detach(previous);
                }
            }
        };
    }

    /** Inside the guard, around the handler: marks its closes, which {@link #outside()} then leaves alone. */
    ServerInterceptor handlerSide() {
        return new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                               ServerCallHandler<Q, R> next) {
                AtomicBoolean byHandler = CLOSED_BY_HANDLER.get();
                if (byHandler == null) {
                    return next.startCall(call, headers);
                }
                return next.startCall(new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
                    @Override
                    public void close(Status status, Metadata trailers) {
                        byHandler.set(true);
                        super.close(status, trailers);
                    }
                }, headers);
            }
        };
    }
}
