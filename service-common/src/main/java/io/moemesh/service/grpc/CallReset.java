package io.moemesh.service.grpc;

import io.grpc.Context;
import io.grpc.Metadata;
import io.grpc.ServerStreamTracer;
import io.grpc.Status;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

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
 *
 * <p>With a {@link HeldRequestBytes} budget ({@link #tracerFactory(HeldRequestBytes)}) the same tracers count the
 * message bytes the transport has read for each call whose client sends one message ({@code inboundWireSize}: the
 * wire bytes of message bodies, compressed ones as sent) until {@link #requestEnded()} (the half-close:
 * {@link RequestParsingGuard} calls it) or the call's end; the read that takes the server's total past the budget
 * resets its call there, on the transport thread, after the closer the guard registered
 * ({@link #beforeReset}) closed it RESOURCE_EXHAUSTED (the client reads that status, the trailers going out before
 * the reset).
 *
 * <p>The same tracers see a one-message call's client begin a second request message ({@code inboundMessage}, on the
 * transport thread, as that message's header is read): grpc-java (ServerCallImpl, 1.85) would cancel its stream with
 * INTERNAL "Too many requests", an RST_STREAM the client sees as a bare CANCELLED, as if it had cancelled the call
 * itself. With a status registered ({@link #refuseSecondMessage}) the closer closes the call with it and the call is
 * reset, so the client reads what it did wrong.
 */
public final class CallReset {
    private static final Logger log = LoggerFactory.getLogger(CallReset.class);
    private static final Context.Key<CallReset> KEY = Context.key("moemesh-call-reset");
    /** Outside a call the tracer saw: {@link #reset} does nothing and says so. */
    private static final CallReset NONE = new CallReset(null, null, "no call");
    private static final ServerStreamTracer.Factory TRACERS = tracers(null);
    /** {@link #held} once the call's bytes no longer count (not a one-message call, half-closed, ended, reset). */
    private static final long NOT_COUNTED = -1;
    /** At most one info line per this long about calls reset past a budget; the others at debug. */
    private static final long LOG_EVERY_NANOS = TimeUnit.SECONDS.toNanos(10);
    /** Shared by every server: it only spaces the info lines. */
    private static final AtomicLong lastLogged = new AtomicLong(System.nanoTime() - LOG_EVERY_NANOS);

    private final Context.CancellableContext parent;
    private final HeldRequestBytes budget;
    /** Bytes of the call's request counted against {@link #budget}, or {@link #NOT_COUNTED}. */
    private final AtomicLong held;
    private final String method;
    private volatile Consumer<Status> closer;
    /** What the closer closes the call with when its client begins a second request message; null = grpc-java's. */
    private volatile Status secondMessage;

    private CallReset(Context.CancellableContext parent, HeldRequestBytes budget, String method) {
        this.parent = parent;
        this.budget = budget;
        this.method = method;
        this.held = new AtomicLong(budget == null ? NOT_COUNTED : 0);
    }

    private static ServerStreamTracer.Factory tracers(HeldRequestBytes budget) {
        return new ServerStreamTracer.Factory() {
            @Override
            public ServerStreamTracer newServerStreamTracer(String fullMethodName, Metadata headers) {
                return tracer(fullMethodName, budget);
            }
        };
    }

    private static ServerStreamTracer tracer(String fullMethodName, HeldRequestBytes budget) {
        return new ServerStreamTracer() {
            /** Set in filterContext, on the transport thread, before the call's other callbacks. */
            private volatile CallReset call;

            @Override
            public Context filterContext(Context context) {
                Context.CancellableContext own = context.withCancellation();
                call = new CallReset(own, budget, fullMethodName);
                return own.withValue(KEY, call);
            }

            @Override
            public void serverCallStarted(ServerCallInfo<?, ?> info) {
                // A stream's messages pass through and are not held: only a one-message call's request counts.
                CallReset c = call;
                if (c != null && !info.getMethodDescriptor().getType().clientSendsOneMessage()) {
                    c.requestEnded();
                }
            }

            @Override
            public void inboundWireSize(long bytes) {
                CallReset c = call;
                if (c != null) {
                    c.read(bytes);
                }
            }

            @Override
            public void inboundMessage(int seqNo) {
                CallReset c = call;
                // Numbered from 0: the second message's header was read, its body not yet.
                if (c != null && seqNo == 1) {
                    c.secondMessage();
                }
            }

            @Override
            public void streamClosed(Status status) {
                CallReset c = call;
                if (c != null) {
                    c.requestEnded();
                }
            }
        };
    }

    /** The stream tracers that make {@link #current()} work in every call of the server they are added to. */
    public static ServerStreamTracer.Factory tracerFactory() {
        return TRACERS;
    }

    /**
     * The same, and the request bytes held by the server's one-message calls before their half-close are bounded by
     * {@code budget} (see the class comment; one budget for all the servers it is given to).
     */
    public static ServerStreamTracer.Factory tracerFactory(HeldRequestBytes budget) {
        return tracers(Objects.requireNonNull(budget, "budget"));
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

    /**
     * Registers what closes the call with a status before a reset past the budget (the guard's close, so that the
     * client reads why); without one the client sees only the reset (CANCELLED).
     */
    void beforeReset(Consumer<Status> closer) {
        if (parent != null) {
            this.closer = closer;
        }
    }

    /**
     * For a call whose client must send one request message: when it begins a second one, the call is closed with
     * {@code status} by the {@link #beforeReset closer} and reset (see the class comment).
     */
    void refuseSecondMessage(Status status) {
        if (parent != null) {
            this.secondMessage = Objects.requireNonNull(status, "status");
        }
    }

    /** On the transport thread: the call's client began its second request message. */
    private void secondMessage() {
        Status s = secondMessage;
        if (s == null) {
            return;
        }
        log.debug("{} refused: {}", method, s.getDescription());
        try {
            Consumer<Status> c = closer;
            if (c != null) {
                c.accept(s);
            }
        } finally {
            // After the trailers (queued first): the rest of the client's stream is dropped, not read.
            reset(s.getDescription());
        }
    }

    /** The call's request ended (its half-close): its bytes, now the handler's, no longer count against the budget. */
    public void requestEnded() {
        long mine = held.getAndSet(NOT_COUNTED);
        if (mine > 0) {
            budget.release(mine);
        }
    }

    /** On the transport thread: {@code bytes} more of the call's request were read. */
    private void read(long bytes) {
        long before;
        do {
            before = held.get();
            if (before == NOT_COUNTED) {
                return;
            }
        } while (!held.compareAndSet(before, before + bytes));
        if (budget.take(bytes)) {
            return;
        }
        long mine = held.getAndSet(NOT_COUNTED);
        if (mine == NOT_COUNTED) {
            return; // half-closed meanwhile, its bytes given back: the handler has the message
        }
        budget.release(mine);
        budget.countReset();
        String why = "with this call's " + mine + " bytes, the requests of calls not yet half-closed would hold more"
                + " than " + budget.max() + " bytes (" + budget.setting() + "); retry later";
        long now = System.nanoTime();
        long last = lastLogged.get();
        if (now - last >= LOG_EVERY_NANOS && lastLogged.compareAndSet(last, now)) {
            log.info("{} reset: {} ({} such resets so far; further ones logged at debug for {} s)", method, why,
                    budget.resets(), TimeUnit.NANOSECONDS.toSeconds(LOG_EVERY_NANOS));
        } else {
            log.debug("{} reset: {}", method, why);
        }
        try {
            Consumer<Status> c = closer;
            if (c != null) {
                c.accept(Status.RESOURCE_EXHAUSTED.withDescription(why));
            }
        } finally {
            reset(why);
        }
    }
}
