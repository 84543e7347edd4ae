package io.moemesh.service.grpc;

import io.grpc.Context;
import io.grpc.Metadata;
import io.grpc.ServerStreamTracer;
import io.grpc.Status;

/**
 * Resets a server call's HTTP/2 stream (RST_STREAM), so that what the transport still queues for it (messages a
 * client never read, trailers behind them) is dropped at once. Closing a call with a status cannot do that: its
 * trailers are queued behind its data, and the stream, with every queued byte, lives until the client reads them
 * all or its connection closes.
 *
 * <p>How: grpc-java's ServerImpl resets a call's stream when the call's Context is cancelled with a cause whose
 * status is DEADLINE_EXCEEDED (ServerImpl.ServerStreamCancellationListener, grpc-core 1.85: how a server deadline
 * ends a call). No API resets a server stream, and the call's own CancellableContext cannot be reached (what is
 * current in a call is its uncancellable surrogate). But ServerImpl creates that context as a child of the context
 * its stream tracers' {@code filterContext} return, and a child is cancelled with its parent's cause: so
 * {@link #tracerFactory()} (added to the server: {@code GrpcServerLifecycle#resettableCalls}) gives each call a
 * cancellable parent of its own, which {@link #current()} finds in the call's Context. The handler's listener then
 * gets {@code onCancel}, as for a client cancellation; the client sees the reset as CANCELLED (an RST_STREAM
 * carries no status or message).
 */
public final class CallReset {
    private static final Context.Key<CallReset> KEY = Context.key("moemesh-call-reset");
    /** Outside a call the tracer saw: {@link #reset} does nothing and says so. */
    private static final CallReset NONE = new CallReset(null);
    private static final ServerStreamTracer.Factory TRACERS = new ServerStreamTracer.Factory() {
        @Override
        public ServerStreamTracer newServerStreamTracer(String fullMethodName, Metadata headers) {
            return new ServerStreamTracer() {
                @Override
                public Context filterContext(Context context) {
                    Context.CancellableContext own = context.withCancellation();
                    return own.withValue(KEY, new CallReset(own));
                }
            };
        }
    };

    private final Context.CancellableContext parent;

    private CallReset(Context.CancellableContext parent) {
        this.parent = parent;
    }

    /** The stream tracers that make {@link #current()} work in every call of the server they are added to. */
    public static ServerStreamTracer.Factory tracerFactory() {
        return TRACERS;
    }

    /**
     * The current call's reset (call it where the call's Context is current, the handler or an interceptor, and
     * keep it for other threads); one whose {@link #reset} returns false on a server without {@link #tracerFactory()}.
     */
    public static CallReset current() {
        CallReset r = KEY.get();
        return r == null ? NONE : r;
    }

    /**
     * Resets the call's stream now, from any thread, without blocking (the reset is queued to the transport); after
     * the call ended, it does nothing.
     *
     * @param why said in the server's own records of the call (its Context's cancellation cause); not sent
     * @return false when the call's server has no {@link #tracerFactory()}, or this was reset already
     */
    public boolean reset(String why) {
        return parent != null && parent.cancel(Status.DEADLINE_EXCEEDED.withDescription(why).asRuntimeException());
    }
}
