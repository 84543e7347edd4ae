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
import java.util.ArrayList;
import java.util.List;
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
 * (where grpc-java's stubs run the method) or the call ended.
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

    private RequestParsingGuard() {
    }

    /** Every method of {@code service} parses its requests in the guard. */
    public static ServerServiceDefinition guard(ServerServiceDefinition service) {
        return guard(service, null);
    }

    /** The same, admitting single-message requests through {@code gate} (null = no gate). */
    public static ServerServiceDefinition guard(ServerServiceDefinition service, Gate gate) {
        ServiceDescriptor sd = service.getServiceDescriptor();
        if (service.getMethods().stream().allMatch(m -> m.getMethodDescriptor().getRequestMarshaller() instanceof RawMarshaller)) {
            return service;
        }
        ServiceDescriptor.Builder descriptor = ServiceDescriptor.newBuilder(sd.getName())
                .setSchemaDescriptor(sd.getSchemaDescriptor());
        List<ServerMethodDefinition<?, ?>> wrapped = new ArrayList<>();
        for (ServerMethodDefinition<?, ?> m : service.getMethods()) {
            ServerMethodDefinition<?, ?> w = wrap(m, gate);
            wrapped.add(w);
            descriptor.addMethod(w.getMethodDescriptor());
        }
        // ServerServiceDefinition wants the very descriptor instances its ServiceDescriptor lists.
        ServerServiceDefinition.Builder out = ServerServiceDefinition.builder(descriptor.build());
        wrapped.forEach(out::addMethod);
        return out.build();
    }

    private static <Q, R> ServerMethodDefinition<?, R> wrap(ServerMethodDefinition<Q, R> m, Gate gate) {
        MethodDescriptor<Q, R> original = m.getMethodDescriptor();
        if (original.getRequestMarshaller() instanceof RawMarshaller) {
            return m;
        }
        MethodDescriptor<InputStream, R> raw = original.toBuilder(RAW, original.getResponseMarshaller()).build();
        boolean gated = gate != null && original.getType().clientSendsOneMessage();
        ServerCallHandler<Q, R> next = m.getServerCallHandler();
        ServerCallHandler<InputStream, R> handler = (call, headers) -> {
            GuardedCall<Q, R> guarded = new GuardedCall<>(call, original);
            return new GuardedListener<>(guarded, next.startCall(guarded, headers), gated ? gate : null);
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
        private final Object lock = new Object();
        private volatile boolean closedByGuard;

        GuardedCall(ServerCall<InputStream, R> call, MethodDescriptor<Q, R> method) {
            this.call = call;
            this.method = method;
        }

        /** Returns false when the call was already closed (by the handler or the guard). */
        boolean closeByGuard(Status status) {
            synchronized (lock) {
                if (closedByGuard) {
                    return false;
                }
                closedByGuard = true;
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

    /** Parses each raw message and hands it on; the transport serialises these callbacks. */
    private static final class GuardedListener<Q, R> extends ServerCall.Listener<InputStream> {
        private final GuardedCall<Q, R> call;
        private final ServerCall.Listener<Q> next;
        private final Gate gate;
        private Runnable release;

        GuardedListener(GuardedCall<Q, R> call, ServerCall.Listener<Q> next, Gate gate) {
            this.call = call;
            this.next = next;
            this.gate = gate;
        }

        @Override
        public void onMessage(InputStream raw) {
            if (call.closedByGuard()) {
                return;
            }
            MethodDescriptor<Q, R> method = call.getMethodDescriptor();
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
                // A second message on the call (a unary method's handler asks for two, to refuse the extra one)
                // must not overwrite the first one's permit: that permit would never be given back.
                done();
                try {
                    release = gate.admit(method, size);
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
            done();
            if (call.closeByGuard(status)) {
                next.onCancel();
            }
        }

        private void done() {
            Runnable r = release;
            release = null;
            if (r != null) {
                r.run();
            }
        }

        @Override
        public void onHalfClose() {
            if (call.closedByGuard()) {
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
            done();
            if (!call.closedByGuard()) {
                next.onCancel();
            }
        }

        @Override
        public void onComplete() {
            done();
            if (!call.closedByGuard()) {
                next.onComplete();
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
