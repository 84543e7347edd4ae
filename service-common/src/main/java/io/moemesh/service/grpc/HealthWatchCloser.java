package io.moemesh.service.grpc;

import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.grpc.health.v1.HealthGrpc;

/**
 * Keeps the open {@code grpc.health.v1.Health/Watch} calls of one server so {@link GrpcServerLifecycle#stop} can end
 * them. grpc-java's {@code HealthStatusManager.enterTerminalState()} sends NOT_SERVING to every watcher but never
 * completes a watch, and a graceful {@code Server.shutdown()} waits for every open call: while any client held a
 * watch (every gateway holds one on each expert-service) each stop waited its whole grace period, idle or not.
 * Once stopping, the watches are closed with UNAVAILABLE ("server shutting down") after their NOT_SERVING, and a
 * watch that starts after that is refused the same way.
 */
final class HealthWatchCloser implements ServerInterceptor {
    private static final String WATCH = HealthGrpc.getWatchMethod().getFullMethodName();

    private final OpenStreams<Watch<?, ?>> open = new OpenStreams<>();

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                        ServerCallHandler<Q, R> next) {
        if (!WATCH.equals(call.getMethodDescriptor().getFullMethodName())) {
            return next.startCall(call, headers);
        }
        Watch<Q, R> watch = new Watch<>(call);
        if (!open.register(watch)) {
            watch.closeForShutdown();
            return new ServerCall.Listener<>() { };
        }
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(next.startCall(watch, headers)) {
            @Override
            public void onCancel() {
                forget(watch);
                super.onCancel();
            }

            @Override
            public void onComplete() {
                forget(watch);
                super.onComplete();
            }
        };
    }

    private void forget(Watch<?, ?> watch) {
        open.unregister(watch);
    }

    /** Ends every open watch and refuses later ones; call once the watchers have been sent NOT_SERVING. */
    void closeAll() {
        open.endAll(Watch::closeForShutdown);
    }

    /**
     * The health service's view of a watch: its sends and its close are serialised with the close at stop (a
     * ServerCall takes one caller at a time), and once closed here the health service's later sends are dropped.
     */
    private static final class Watch<Q, R> extends ForwardingServerCall.SimpleForwardingServerCall<Q, R> {
        private boolean closed;

        Watch(ServerCall<Q, R> call) {
            super(call);
        }

        synchronized void closeForShutdown() {
            if (!closed) {
                closed = true;
                super.close(Status.UNAVAILABLE.withDescription("server shutting down"), new Metadata());
            }
        }

        @Override
        public synchronized void sendHeaders(Metadata headers) {
            if (!closed) {
                super.sendHeaders(headers);
            }
        }

        @Override
        public synchronized void sendMessage(R message) {
            if (!closed) {
                super.sendMessage(message);
            }
        }

        @Override
        public synchronized void close(Status status, Metadata trailers) {
            if (!closed) {
                closed = true;
                super.close(status, trailers);
            }
        }
    }
}
