package io.moemesh.expert.grpc;

import io.moemesh.service.grpc.GrpcServerLifecycle;
import org.springframework.context.SmartLifecycle;

/**
 * Ends the service's ExpertBatch streams at stop, just before the gRPC server's own graceful stop (one phase
 * earlier): first gRPC health says NOT_SERVING, so the gateways route no new batch here; then every open stream
 * requests no further messages, answers those that reach it before its last answer (each judged as at any time: a
 * batch of the previous placement epoch arrived within the drain grace is computed, one after it is refused as not
 * held) and ends with UNAVAILABLE ("expert-service &lt;id&gt; shutting down"), an idle one at once. Returns
 * without waiting for those answers: the server's stop that follows waits for them, within its shutdown grace,
 * instead of the whole grace for streams that every gateway keeps open. Streams opened from here on are refused with
 * the same status.
 */
public final class ExpertBatchShutdown implements SmartLifecycle {
    private final GrpcServerLifecycle server;
    private final ExpertGrpcService service;
    private volatile boolean running;

    public ExpertBatchShutdown(GrpcServerLifecycle server, ExpertGrpcService service) {
        this.server = server;
        this.service = service;
    }

    /** After the server (a later phase): streams are accepted again after a stop and a start. */
    @Override
    public void start() {
        service.batchStreams().resume();
        running = true;
    }

    @Override
    public void stop() {
        running = false;
        // The server's stop makes this terminal right after; set here so the watchers hear it before any stream ends.
        server.setServing(false);
        // Each stream answers what it took and then ends; this does not wait for those answers.
        service.batchStreams().endAll(BatchStream::shutDown);
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    /** Stops right before the server, which stops gracefully and would wait for the streams. */
    @Override
    public int getPhase() {
        return server.getPhase() + 1;
    }
}
