package io.moemesh.service.expert;

import io.grpc.ConnectivityState;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@code grpc.health.v1.Health/Watch} stream (service {@code ""}) on an instance's channel, restarted with a
 * short backoff whenever it breaks, so the instance's health is known without sending it data.
 *
 * <p>Why the backoff is reset by hand: after a failed connect grpc-java backs off exponentially up to 2 minutes
 * (connection-backoff.md), and a pick-first channel stays in TRANSIENT_FAILURE until a connect succeeds
 * (gRFC A62), failing every RPC at once meanwhile. A restarted instance on the same port would then wait minutes
 * for the channel's next attempt. So every restart of the watch first calls
 * {@link ManagedChannel#resetConnectBackoff()}: while an instance is down its channel retries at most every
 * {@link #MAX_RETRY_MILLIS} ms (a refused connect on loopback costs microseconds), and once it is back the watch
 * sees SERVING within about that long.
 */
final class HealthWatch implements AutoCloseable {
    /**
     * Wait before the second retry in a row, doubled up to {@link #MAX_RETRY_MILLIS}. The first retry after a
     * break is immediate: a GOAWAY or a dropped idle connection is fixed by reconnecting at once.
     */
    static final long FIRST_RETRY_MILLIS = 100;
    static final long MAX_RETRY_MILLIS = 1000;
    private static final Logger log = LoggerFactory.getLogger(HealthWatch.class);

    private final String id;
    private final ManagedChannel channel;
    private final List<Consumer<InstanceHealth>> listeners = new CopyOnWriteArrayList<>();
    private volatile InstanceHealth current = InstanceHealth.UNKNOWN;
    private Context.CancellableContext active; // guarded by this: the watch in progress
    private int failures; // guarded by this: watches in a row that ended without an answer
    private boolean closed; // guarded by this

    HealthWatch(String id, ManagedChannel channel) {
        this.id = id;
        this.channel = channel;
    }

    void start() {
        watch();
    }

    InstanceHealth current() {
        return current;
    }

    void addListener(Consumer<InstanceHealth> listener) {
        listeners.add(listener);
    }

    private void watch() {
        // A root context: a watch restarted from inside the previous one's callback would otherwise be its child,
        // and the chain of contexts would grow with every restart.
        Context.CancellableContext ctx = Context.ROOT.withCancellation();
        synchronized (this) {
            if (closed) {
                return;
            }
            active = ctx;
        }
        ctx.run(() -> HealthGrpc.newStub(channel).watch(HealthCheckRequest.newBuilder().setService("").build(),
                new Observer(ctx)));
    }

    private final class Observer implements StreamObserver<HealthCheckResponse> {
        private final Context.CancellableContext ctx;

        Observer(Context.CancellableContext ctx) {
            this.ctx = ctx;
        }

        @Override
        public void onNext(HealthCheckResponse r) {
            synchronized (HealthWatch.this) {
                if (active != ctx) {
                    return;
                }
                failures = 0;
            }
            InstanceHealth h = switch (r.getStatus()) {
                case SERVING -> InstanceHealth.SERVING;
                // The health protocol answers SERVICE_UNKNOWN for a service the server does not serve.
                case NOT_SERVING, SERVICE_UNKNOWN -> InstanceHealth.NOT_SERVING;
                default -> InstanceHealth.UNKNOWN;
            };
            if (h == InstanceHealth.SERVING) {
                // The data path shares the channel: connect it now, not at the end of a backoff.
                channel.resetConnectBackoff();
            }
            set(h);
        }

        @Override
        public void onError(Throwable t) {
            ended(ctx, Status.fromThrowable(t));
        }

        @Override
        public void onCompleted() {
            ended(ctx, Status.UNAVAILABLE.withDescription("the server ended the health watch"));
        }
    }

    private void ended(Context.CancellableContext ctx, Status status) {
        long delay;
        int failed;
        synchronized (this) {
            if (closed || active != ctx) {
                return;
            }
            active = null;
            failed = ++failures;
            delay = failed == 1 ? 0 : Math.min(MAX_RETRY_MILLIS, FIRST_RETRY_MILLIS << Math.min(10, failed - 2));
        }
        ctx.cancel(null);
        if (status.getCode() == Status.Code.UNIMPLEMENTED) {
            // No health service: nothing is known, calls may go to it; look again now and then.
            set(InstanceHealth.UNKNOWN);
            delay = MAX_RETRY_MILLIS;
        } else if (failed > 1 || channel.getState(false) == ConnectivityState.TRANSIENT_FAILURE) {
            set(InstanceHealth.UNREACHABLE);
        }
        // Runs the restart on the JDK's delay thread itself: it only starts an asynchronous call.
        CompletableFuture.delayedExecutor(delay, TimeUnit.MILLISECONDS, Runnable::run).execute(() -> {
            channel.resetConnectBackoff();
            watch();
        });
    }

    private synchronized void set(InstanceHealth h) {
        if (current == h) {
            return;
        }
        log.info("{} health: {} -> {}", id, current, h);
        current = h;
        for (Consumer<InstanceHealth> l : listeners) {
            l.accept(h);
        }
    }

    @Override
    public void close() {
        Context.CancellableContext ctx;
        synchronized (this) {
            closed = true;
            ctx = active;
            active = null;
        }
        if (ctx != null) {
            ctx.cancel(null);
        }
    }
}
