package io.moemesh.service.grpc;

import io.grpc.Attributes;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.SecurityLevel;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Parses every request message of a service in the call's listener instead of in grpc-java's marshaller, so a
 * message that does not parse (bytes that are not the message type, a proto3 string that is not valid UTF-8, a
 * gzip body that does not inflate) closes the call with {@code INVALID_ARGUMENT: the request is not a valid
 * <message type>: <parser message>} and nothing is logged above debug. Without it grpc-java's ServerImpl closes
 * such a call with UNKNOWN ("Application error processing RPC") and logs a stack trace per call.
 *
 * <p>How: each method is re-registered with a request marshaller that hands the raw {@link InputStream} through
 * (grpc-java keeps that stream open until {@code onMessage} returns: ServerCallImpl.messagesAvailableInternal), and
 * the listener parses it with the method's own marshaller. Responses keep their marshaller (no re-encoding).
 * Flow control is untouched: every {@code request(n)} of the handler goes to the real call and each delivered
 * message is parsed and passed on synchronously, one for one. After the guard closed a call, the handler's call
 * ignores further sends and closes and reports {@code isCancelled()}, and the handler's listener gets
 * {@code onCancel()} once, as for a client cancellation; a bidi stream therefore ends at the first unparseable
 * message (no reply can name the message it could not read).
 *
 * <p>With a {@link Gate}, methods whose client sends a single message (unary, server streaming) are also admitted
 * by serialized size before parsing; the gate's release runs once the handler returned from {@code onHalfClose}
 * (where grpc-java's stubs run the method) or the call ended. grpc-java's ServerCallImpl hands such a call's
 * message to the listener only at the half-close (1.85: it holds it unparsed until then), so the gate is asked then,
 * and no permit is held while a client takes its time; but the message's bytes are held for as long as the client
 * does not half-close, whatever their size up to the inbound limit. With a {@link HalfCloseBound} the guard ends a
 * call whose half-close has not come that long after its start: closed DEADLINE_EXCEEDED with a description that
 * names the bound's setting, any permit given back, its stream reset ({@link CallReset}, on a server with its
 * tracers) so that nothing of it stays; the handler's listener gets {@code onCancel()}. What all such calls hold
 * together is bounded by a server's {@link HeldRequestBytes} (its {@link CallReset} tracers count the bytes, the
 * guard says when the half-close came and closes a call reset past it RESOURCE_EXHAUSTED).
 *
 * <p>A one-message method's call must carry exactly one request message, else INVALID_ARGUMENT naming the message
 * type and the rule: grpc-java answers a client's protocol mistake as a server fault, INTERNAL "Half-closed without a
 * request" from its stubs for none, and for a second one its transport cancels the stream, INTERNAL "Too many
 * requests" the client never reads (it sees a bare CANCELLED). The second one is caught as its header is read, on a
 * server with {@link CallReset}'s tracers ({@link CallReset#refuseSecondMessage}); should it reach the guard, it is
 * refused there.
 */
public final class RequestParsingGuard {
    private static final Logger log = LoggerFactory.getLogger(RequestParsingGuard.class);

    /** Decides from a message's serialized size whether it may be parsed and handled now. */
    @FunctionalInterface
    public interface Gate {
        /**
         * @return what to run when the handler is done with the message (release a permit)
         * @throws StatusRuntimeException to refuse the call with that status (RESOURCE_EXHAUSTED for a shortage)
         */
        Runnable admit(MethodDescriptor<?, ?> method, int serializedBytes);
    }

    /** Marks the request marshaller of an already guarded method, so guarding twice changes nothing. */
    private static final class RawMarshaller implements MethodDescriptor.Marshaller<InputStream> {
        @Override
        public InputStream stream(InputStream value) {
            return value;
        }

        @Override
        public InputStream parse(InputStream stream) {
            return stream;
        }
    }

    private static final RawMarshaller RAW = new RawMarshaller();

    /**
     * How long a gated call may take from its start (its headers) to its half-close.
     *
     * @param timeout > 0
     * @param setting the property that sets it, named in the status of a call that passed it
     */
    public record HalfCloseBound(Duration timeout, String setting) {
        public HalfCloseBound {
            if (timeout == null || timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException(setting + " must be a positive duration, got " + timeout);
            }
        }
    }

    /** One daemon thread for every server's bounds: it only closes calls, never waits. */
    private static final class Timer {
        static final ScheduledThreadPoolExecutor INSTANCE = create();

        private static ScheduledThreadPoolExecutor create() {
            ScheduledThreadPoolExecutor t = new ScheduledThreadPoolExecutor(1,
                    Thread.ofPlatform().name("grpc-half-close-bound").daemon().factory());
            // Nearly every bound is cancelled by its half-close: do not keep them queued until they would have fired.
            t.setRemoveOnCancelPolicy(true);
            return t;
        }
    }

    private RequestParsingGuard() {
    }

    /** Every method of {@code service} parses its requests in the guard. */
    public static ServerServiceDefinition guard(ServerServiceDefinition service) {
        return guard(service, null);
    }

    /** The same, admitting single-message requests through {@code gate} (null = no gate). */
    public static ServerServiceDefinition guard(ServerServiceDefinition service, Gate gate) {
        return guard(service, gate, null);
    }

    /**
     * The same, and a call of a one-message method whose half-close has not come {@code bound} after its start is
     * ended, gated or not (see the class comment; null = no bound): a health or reflection call's message is held
     * until its half-close like any other, and counts against the server's HeldRequestBytes.
     */
    public static ServerServiceDefinition guard(ServerServiceDefinition service, Gate gate, HalfCloseBound bound) {
        return guard(service, gate, bound, status -> { });
    }

    /**
     * The same, and {@code closedByGuard} is told the status of every call the guard itself ends (an unreadable or
     * oversize request, a missed half-close bound, a reset past the held-bytes budget), once per call; never of a
     * call its handler closed.
     */
    public static ServerServiceDefinition guard(ServerServiceDefinition service, Gate gate, HalfCloseBound bound,
                                                Consumer<Status> closedByGuard) {
        Objects.requireNonNull(closedByGuard, "closedByGuard");
        ServiceDescriptor sd = service.getServiceDescriptor();
        if (service.getMethods().stream().allMatch(m -> m.getMethodDescriptor().getRequestMarshaller() instanceof RawMarshaller)) {
            return service;
        }
        ServiceDescriptor.Builder descriptor = ServiceDescriptor.newBuilder(sd.getName())
                .setSchemaDescriptor(sd.getSchemaDescriptor());
        List<ServerMethodDefinition<?, ?>> wrapped = new ArrayList<>();
        for (ServerMethodDefinition<?, ?> m : service.getMethods()) {
            ServerMethodDefinition<?, ?> w = wrap(m, gate, bound, closedByGuard);
            wrapped.add(w);
            descriptor.addMethod(w.getMethodDescriptor());
        }
        // ServerServiceDefinition wants the very descriptor instances its ServiceDescriptor lists.
        ServerServiceDefinition.Builder out = ServerServiceDefinition.builder(descriptor.build());
        wrapped.forEach(out::addMethod);
        return out.build();
    }

    private static <Q, R> ServerMethodDefinition<?, R> wrap(ServerMethodDefinition<Q, R> m, Gate gate,
                                                            HalfCloseBound bound, Consumer<Status> closedByGuard) {
        MethodDescriptor<Q, R> original = m.getMethodDescriptor();
        if (original.getRequestMarshaller() instanceof RawMarshaller) {
            return m;
        }
        MethodDescriptor<InputStream, R> raw = original.toBuilder(RAW, original.getResponseMarshaller()).build();
        boolean oneMessage = original.getType().clientSendsOneMessage();
        boolean gated = gate != null && oneMessage;
        ServerCallHandler<Q, R> next = m.getServerCallHandler();
        ServerCallHandler<InputStream, R> handler = (call, headers) -> {
            GuardedCall<Q, R> guarded = new GuardedCall<>(call, original, closedByGuard);
            // Taken here, where the call's Context is current: the bound fires on the timer's thread.
            CallReset reset = CallReset.current();
            // Before the handler asks for the message: a read past the server's budget of held request bytes may
            // follow at once, on the transport thread (the client then reads why before the reset).
            reset.beforeReset(guarded::closeByGuardBeforeHalfClose);
            if (oneMessage) {
                reset.refuseSecondMessage(secondMessage(original));
            }
            GuardedListener<Q, R> listener = new GuardedListener<>(guarded, next.startCall(guarded, headers),
                    gated ? gate : null, oneMessage, oneMessage ? bound : null, reset);
            listener.startHalfCloseTimer();
            return listener;
        };
        return ServerMethodDefinition.create(raw, handler);
    }

    /** The message type's full name when the marshaller knows it, else the method's. */
    private static String typeName(MethodDescriptor<?, ?> method) {
        if (method.getRequestMarshaller() instanceof TensorMessageMarshaller<?> t) {
            return t.typeName();
        }
        if (method.getRequestMarshaller() instanceof MethodDescriptor.PrototypeMarshaller<?> p
                && p.getMessagePrototype() instanceof com.google.protobuf.Message msg) {
            return msg.getDescriptorForType().getFullName();
        }
        return "request of " + method.getFullMethodName();
    }

    /** A one-message call's client sent a second request message. */
    private static Status secondMessage(MethodDescriptor<?, ?> method) {
        return Status.INVALID_ARGUMENT.withDescription("the call sent a second " + typeName(method) + ": "
                + method.getFullMethodName() + " takes exactly one");
    }

    /** What the parser said, innermost cause first (InvalidProtocolBufferException's message). */
    private static String parserMessage(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null && c.getCause() != c) {
            c = c.getCause();
        }
        String m = c.getMessage();
        return m == null || m.isBlank() ? "unreadable" : m;
    }

    /** The handler's view of the call: the original method, and silence once the guard has closed it. */
    private static final class GuardedCall<Q, R> extends ServerCall<Q, R> {
        private final ServerCall<InputStream, R> call;
        private final MethodDescriptor<Q, R> method;
        private final Consumer<Status> onCloseByGuard;
        private final Object lock = new Object();
        private volatile boolean closedByGuard;
        /** The handler closed the call (guarded by {@link #lock}): the guard ends it no more. */
        private boolean closedByHandler;
        /** The handler was given the half-close (guarded by {@link #lock}): a bound may no longer end the call. */
        private boolean halfClosed;

        GuardedCall(ServerCall<InputStream, R> call, MethodDescriptor<Q, R> method, Consumer<Status> onCloseByGuard) {
            this.call = call;
            this.method = method;
            this.onCloseByGuard = onCloseByGuard;
        }

        /** Returns false when the call was already closed (by the handler or the guard). */
        boolean closeByGuard(Status status) {
            synchronized (lock) {
                if (closedByGuard || closedByHandler) {
                    return false;
                }
                closedByGuard = true;
                // Told before the close that sends the client its status: whoever sees the status sees the count.
                onCloseByGuard.accept(status);
                try {
                    call.close(status, new Metadata());
                } catch (IllegalStateException alreadyClosed) {
                    return false;
                }
                return true;
            }
        }

        boolean closedByGuard() {
            return closedByGuard;
        }

        /** Returns false when the guard has closed the call: the handler must not get the half-close then. */
        boolean halfClose() {
            synchronized (lock) {
                halfClosed = !closedByGuard;
                return halfClosed;
            }
        }

        /** Closes the call unless the handler got its half-close or the call was closed already. */
        boolean closeByGuardBeforeHalfClose(Status status) {
            synchronized (lock) {
                return !halfClosed && closeByGuard(status);
            }
        }

        @Override
        public void request(int numMessages) {
            if (!closedByGuard) {
                call.request(numMessages);
            }
        }

        @Override
        public void sendHeaders(Metadata headers) {
            synchronized (lock) {
                if (!closedByGuard) {
                    call.sendHeaders(headers);
                }
            }
        }

        @Override
        public void sendMessage(R message) {
            synchronized (lock) {
                if (!closedByGuard) {
                    call.sendMessage(message);
                }
            }
        }

        @Override
        public boolean isReady() {
            return !closedByGuard && call.isReady();
        }

        @Override
        public void close(Status status, Metadata trailers) {
            synchronized (lock) {
                if (!closedByGuard) {
                    closedByHandler = true;
                    call.close(status, trailers);
                }
            }
        }

        @Override
        public boolean isCancelled() {
            return closedByGuard || call.isCancelled();
        }

        @Override
        public void setMessageCompression(boolean enabled) {
            call.setMessageCompression(enabled);
        }

        @Override
        public void setCompression(String compressor) {
            call.setCompression(compressor);
        }

        @Override
        public void setOnReadyThreshold(int numBytes) {
            call.setOnReadyThreshold(numBytes);
        }

        @Override
        public SecurityLevel getSecurityLevel() {
            return call.getSecurityLevel();
        }

        @Override
        public Attributes getAttributes() {
            return call.getAttributes();
        }

        @Override
        public String getAuthority() {
            return call.getAuthority();
        }

        @Override
        public void triggerEvent(Object event) {
            call.triggerEvent(event);
        }

        @Override
        public MethodDescriptor<Q, R> getMethodDescriptor() {
            return method;
        }
    }

    /**
     * Parses each raw message and hands it on; the transport serialises these callbacks. The half-close bound's
     * timer runs on its own thread: it only closes the call and gives the permit back (both thread-safe); the
     * handler's listener hears of it in the next serialised callback (the call's end).
     */
    private static final class GuardedListener<Q, R> extends ServerCall.Listener<InputStream> {
        private final GuardedCall<Q, R> call;
        private final ServerCall.Listener<Q> next;
        private final Gate gate;
        /** The method's client sends one message: it must send exactly one. */
        private final boolean oneMessage;
        private final HalfCloseBound bound;
        private final CallReset reset;
        private final AtomicReference<Runnable> release = new AtomicReference<>();
        /** The handler's listener was told of the guard's close (once). */
        private final AtomicBoolean cancelTold = new AtomicBoolean();
        private volatile ScheduledFuture<?> halfCloseTimer;
        /** A request message arrived (the transport serialises onMessage and onHalfClose). */
        private boolean messageSeen;

        GuardedListener(GuardedCall<Q, R> call, ServerCall.Listener<Q> next, Gate gate, boolean oneMessage,
                        HalfCloseBound bound, CallReset reset) {
            this.call = call;
            this.next = next;
            this.gate = gate;
            this.oneMessage = oneMessage;
            this.bound = bound;
            this.reset = reset;
        }

        /** At the call's start: its half-close must follow within the bound. */
        void startHalfCloseTimer() {
            if (bound != null) {
                halfCloseTimer = Timer.INSTANCE.schedule(this::halfCloseMissed, bound.timeout().toNanos(),
                        TimeUnit.NANOSECONDS);
            }
        }

        private void stopHalfCloseTimer() {
            if (halfCloseTimer != null) {
                halfCloseTimer.cancel(false);
            }
        }

        /** On the timer's thread. */
        private void halfCloseMissed() {
            String why = "the call did not half-close (end its request) within " + bound.timeout().toMillis()
                    + " ms of its start (" + bound.setting() + ")";
            if (call.closeByGuardBeforeHalfClose(Status.DEADLINE_EXCEEDED.withDescription(why))) {
                log.debug("{} ended: {}", call.getMethodDescriptor().getFullMethodName(), why);
                done();
                // After the trailers (queued first): drops the stream, and the request bytes held for it.
                reset.reset(why);
            }
        }

        /** Tells the handler's listener, once, that the call ended without it: as a cancellation. */
        private void tellCancelled() {
            if (cancelTold.compareAndSet(false, true)) {
                next.onCancel();
            }
        }

        @Override
        public void onMessage(InputStream raw) {
            if (call.closedByGuard()) {
                return;
            }
            MethodDescriptor<Q, R> method = call.getMethodDescriptor();
            if (oneMessage && messageSeen) {
                // Before the gate: the call is admitted (its permit taken) once, for its one message.
                refuse(secondMessage(method));
                return;
            }
            messageSeen = true;
            InputStream in = raw;
            if (gate != null) {
                int size;
                try {
                    // A compressed message inflates through a stream that enforces the inbound size limit;
                    // inflated whole, it is KnownLength for the parser too, which then does not inflate it again.
                    in = WireReader.knownLength(raw);
                    size = in.available();
                } catch (StatusRuntimeException e) {
                    refuse(e.getStatus().getCode() == Status.Code.RESOURCE_EXHAUSTED ? e.getStatus() : invalid(method, e));
                    return;
                } catch (IOException | RuntimeException e) {
                    refuse(invalid(method, e));
                    return;
                }
                try {
                    Runnable r = gate.admit(method, size);
                    release.set(r);
                    if (call.closedByGuard()) {
                        // The bound fired while the gate admitted: its done() may have missed this permit.
                        done();
                        return;
                    }
                } catch (StatusRuntimeException e) {
                    refuse(e.getStatus());
                    return;
                }
            }
            Q message;
            try {
                message = method.parseRequest(in);
            } catch (StatusRuntimeException e) {
                Status s = e.getStatus();
                refuse(s.getCode() == Status.Code.RESOURCE_EXHAUSTED ? s : invalid(method, e));
                return;
            } catch (RuntimeException e) {
                refuse(invalid(method, e));
                return;
            }
            next.onMessage(message);
        }

        private static Status invalid(MethodDescriptor<?, ?> method, Throwable e) {
            return Status.INVALID_ARGUMENT.withDescription("the request is not a valid " + typeName(method) + ": "
                    + parserMessage(e));
        }

        private void refuse(Status status) {
            log.debug("{} refused before its handler: {} {}", call.getMethodDescriptor().getFullMethodName(),
                    status.getCode(), status.getDescription());
            stopHalfCloseTimer();
            done();
            if (call.closeByGuard(status)) {
                tellCancelled();
            }
        }

        /** Gives the permit back, once, on whichever thread gets here first. */
        private void done() {
            Runnable r = release.getAndSet(null);
            if (r != null) {
                r.run();
            }
        }

        @Override
        public void onHalfClose() {
            stopHalfCloseTimer();
            reset.requestEnded();
            if (oneMessage && !messageSeen && !call.closedByGuard()) {
                MethodDescriptor<Q, R> method = call.getMethodDescriptor();
                refuse(Status.INVALID_ARGUMENT.withDescription("the call ended its request without a "
                        + typeName(method) + ": " + method.getFullMethodName() + " takes exactly one"));
                return;
            }
            if (!call.halfClose()) {
                return;
            }
            try {
                next.onHalfClose();
            } finally {
                done();
            }
        }

        @Override
        public void onCancel() {
            stopHalfCloseTimer();
            done();
            if (!call.closedByGuard()) {
                next.onCancel();
            } else {
                tellCancelled();
            }
        }

        @Override
        public void onComplete() {
            stopHalfCloseTimer();
            done();
            if (!call.closedByGuard()) {
                next.onComplete();
            } else {
                tellCancelled();
            }
        }

        @Override
        public void onReady() {
            if (!call.closedByGuard()) {
                next.onReady();
            }
        }

        @Override
        public void onEvent(Object event) {
            next.onEvent(event);
        }
    }
}
