package io.moemesh.kvcache.grpc;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The Put streams open now, at most {@code maxStreams} at once (moemesh.kvcache.max-put-streams). Why: each stream
 * buffers the block it is receiving (up to a whole block, 4 MiB for Mixtral) until it is complete, so streams without
 * a bound would let clients that open them and send part of a block exhaust the heap; with it the buffers take at
 * most {@code maxStreams} blocks. One stream more is refused with RESOURCE_EXHAUSTED naming the property, after the
 * streams idle for {@link #IDLE_NANOS} (no message since the last one was done with; a stream storing a block is
 * busy, not idle) were ended to make room: a client that opened streams and went quiet cannot keep the others out.
 * A gateway has one Put stream open at a time (its write-back thread).
 */
final class PutStreams {
    /** Default of moemesh.kvcache.max-put-streams. */
    static final int DEFAULT_MAX_STREAMS = 32;
    /** A stream with no message for this long (30 s) gives its place up to a new one when all are taken. */
    static final long IDLE_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final int maxStreams;
    private final LongSupplier clock;
    /** Guarded by this. */
    private final Set<PutStream> open = new HashSet<>();

    PutStreams(int maxStreams) {
        this(maxStreams, System::nanoTime);
    }

    PutStreams(int maxStreams, LongSupplier clock) {
        if (maxStreams < 1) {
            throw new IllegalArgumentException("max-put-streams must be >= 1, got " + maxStreams);
        }
        this.maxStreams = maxStreams;
        this.clock = clock;
    }

    /** A new Put stream, or one already refused (RESOURCE_EXHAUSTED) when {@code maxStreams} are open. */
    StreamObserver<PutRequest> open(ServedModels models, KvCacheMetrics metrics, StreamObserver<PutResponse> obs) {
        PutStream s = new PutStream(models, metrics, obs, this, clock);
        if (admit(s)) {
            return s;
        }
        // Ended outside this monitor: a stream ends under its own lock, then leaves (closed) under this one. A stream
        // in a message (storing a block) is skipped, never waited for.
        long now = clock.getAsLong();
        for (PutStream idle : snapshot()) {
            idle.endIfIdle(now, IDLE_NANOS, maxStreams);
        }
        if (admit(s)) {
            return s;
        }
        obs.onError(KvCacheStatuses.logged("Put", Status.RESOURCE_EXHAUSTED.withDescription("Put: " + maxStreams
                + " Put streams are open, the most moemesh.kvcache.max-put-streams allows; retry when one ended")
                .asRuntimeException()).asRuntimeException());
        return NOTHING;
    }

    private synchronized boolean admit(PutStream s) {
        if (open.size() >= maxStreams) {
            return false;
        }
        open.add(s);
        return true;
    }

    private synchronized List<PutStream> snapshot() {
        return List.copyOf(open);
    }

    /** The stream ended (answered, failed, or cancelled by its client); idempotent. */
    synchronized void closed(PutStream s) {
        open.remove(s);
    }

    /** Streams open now. */
    synchronized int openStreams() {
        return open.size();
    }

    /** The request side of a refused stream: its messages are dropped (the call is already closed). */
    private static final StreamObserver<PutRequest> NOTHING = new StreamObserver<>() {
        @Override
        public void onNext(PutRequest value) {
        }

        @Override
        public void onError(Throwable t) {
        }

        @Override
        public void onCompleted() {
        }
    };
}
