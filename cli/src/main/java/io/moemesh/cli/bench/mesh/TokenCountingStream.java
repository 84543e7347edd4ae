package io.moemesh.cli.bench.mesh;

import io.grpc.stub.StreamObserver;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One streamed {@code Generate} of a decode benchmark: adds every streamed token to a counter shared by the
 * concurrent streams, and completes {@link #done()} when the stream ends (exceptionally on an error).
 */
public final class TokenCountingStream implements StreamObserver<GenerateResponse> {
    private final AtomicInteger tokens;
    private final CompletableFuture<Void> done = new CompletableFuture<>();

    public TokenCountingStream(AtomicInteger tokens) {
        this.tokens = tokens;
    }

    public CompletableFuture<Void> done() {
        return done;
    }

    @Override
    public void onNext(GenerateResponse r) {
        tokens.addAndGet(r.getTokenIdsCount());
    }

    @Override
    public void onError(Throwable t) {
        done.completeExceptionally(t);
    }

    @Override
    public void onCompleted() {
        done.complete(null);
    }
}
