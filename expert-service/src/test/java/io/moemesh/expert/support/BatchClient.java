package io.moemesh.expert.support;

import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/** One long-lived ExpertBatch stream; replies are matched to requests by batch_id, as the gateway does. */
public final class BatchClient implements AutoCloseable {
    private final Map<Long, CompletableFuture<ExpertBatchResponse>> pending = new ConcurrentHashMap<>();
    private final CompletableFuture<Throwable> ended = new CompletableFuture<>();
    private final StreamObserver<ExpertBatchRequest> requests;

    public BatchClient(ManagedChannel channel) {
        requests = ExpertServiceGrpc.newStub(channel).expertBatch(new StreamObserver<>() {
            @Override
            public void onNext(ExpertBatchResponse r) {
                CompletableFuture<ExpertBatchResponse> f = pending.remove(r.getBatchId());
                if (f == null) {
                    ended.complete(new IllegalStateException("reply for unknown batch " + r.getBatchId()));
                } else {
                    f.complete(r);
                }
            }

            @Override
            public void onError(Throwable t) {
                ended.complete(t);
                pending.values().forEach(f -> f.completeExceptionally(t));
            }

            @Override
            public void onCompleted() {
                ended.complete(null);
            }
        });
    }

    public CompletableFuture<ExpertBatchResponse> send(ExpertBatchRequest req) {
        CompletableFuture<ExpertBatchResponse> f = new CompletableFuture<>();
        pending.put(req.getBatchId(), f);
        // The stream may have failed already (a handshake refused right after the constructor opened it), before f
        // was pending: onError completes `ended` before it fails the pending futures, and f was put before this
        // check, so one of the two always fails f.
        if (ended.isDone()) {
            Throwable t = ended.getNow(null);
            f.completeExceptionally(t != null ? t : new IllegalStateException("the stream has ended"));
            pending.remove(req.getBatchId(), f);
            return f;
        }
        synchronized (requests) {
            requests.onNext(req);
        }
        return f;
    }

    public ExpertBatchResponse call(ExpertBatchRequest req) {
        try {
            return send(req).get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("batch " + req.getBatchId() + " got no reply", e);
        }
    }

    /** Whether the stream has ended (with an error, or completed by the server). */
    public boolean isEnded() {
        return ended.isDone();
    }

    /** Waits for the stream to end: null when the server completed it, else what it ended with. */
    public Throwable awaitEnd(Duration timeout) throws Exception {
        return ended.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** Half-closes and waits for the server to complete the stream. */
    public Throwable finish(Duration timeout) throws Exception {
        synchronized (requests) {
            requests.onCompleted();
        }
        return ended.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() {
        if (!ended.isDone()) {
            synchronized (requests) {
                requests.onError(new RuntimeException("test done"));
            }
        }
    }
}
