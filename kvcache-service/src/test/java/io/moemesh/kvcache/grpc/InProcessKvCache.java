package io.moemesh.kvcache.grpc;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.ForwardingKvTier;
import io.moemesh.kvcache.tier.PutResult;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TestBlocks;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * The real {@link KvCacheGrpcService} over a real store of {@link TestBlocks}' layout (512-byte blocks), its methods
 * called in this thread (no transport): DRAM of {@code dramBlocks} blocks over an SSD tier whose writes can be held
 * ({@link #holdLowerWrites}): a DRAM put that demotes a block then holds the store's lock, as a slow SSD write does.
 */
final class InProcessKvCache implements AutoCloseable {
    static final KvLayout LAYOUT = TestBlocks.LAYOUT;
    final TieredKvStore store;
    final ServedModels models;
    final KvCacheMetrics metrics;
    final KvCacheGrpcService service;
    private final GatedTier lower;

    InProcessKvCache(Path ssdDir, int dramBlocks, int maxPutStreams) {
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(ssdDir, 64L * TestBlocks.RECORD_BYTES), LAYOUT,
                TestBlocks.MODEL, new LruPolicy());
        lower = new GatedTier(ssd);
        store = new TieredKvStore(LAYOUT, (long) dramBlocks * TestBlocks.BLOCK_BYTES, new LruPolicy(), lower,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime);
        models = new ServedModels(List.of(new ServedModel("tiny", TestBlocks.MODEL, LAYOUT.kvHeads(), LAYOUT, store,
                ssd)));
        metrics = new KvCacheMetrics(new SimpleMeterRegistry(), models);
        service = new KvCacheGrpcService(models, metrics, maxPutStreams);
    }

    static ByteString fingerprint() {
        return ByteString.copyFrom(TestBlocks.MODEL.bytes());
    }

    static BlockLayout wire() {
        return BlockLayout.newBuilder().setBlockTokens(LAYOUT.blockTokens()).setNumLayers(LAYOUT.layers())
                .setNumKvHeads(LAYOUT.kvHeads()).setHeadDim(LAYOUT.headDim()).build();
    }

    static ByteString hash(long i) {
        return ByteString.copyFrom(TestBlocks.key(i).bytes());
    }

    static BlockKey key(long i) {
        return TestBlocks.key(i);
    }

    /**
     * From now on the next write into the SSD tier waits until {@link Hold#release}; {@link Hold#entered} completes
     * once a write waits.
     */
    Hold holdLowerWrites() {
        Hold h = new Hold();
        lower.hold = h;
        return h;
    }

    @Override
    public void close() {
        lower.hold = null;
        models.close();
    }

    /** A held SSD write. */
    static final class Hold {
        final CountDownLatch entered = new CountDownLatch(1);
        private final CountDownLatch released = new CountDownLatch(1);

        void release() {
            released.countDown();
        }
    }

    /** One unary answer: the response, or the status it failed with. */
    static final class Answer<T> implements StreamObserver<T> {
        private final CompletableFuture<T> done = new CompletableFuture<>();

        @Override
        public void onNext(T value) {
            done.complete(value);
        }

        @Override
        public void onError(Throwable t) {
            done.completeExceptionally(t);
        }

        @Override
        public void onCompleted() {
            done.complete(null);
        }

        boolean isDone() {
            return done.isDone();
        }

        T value() throws Exception {
            return done.get(30, TimeUnit.SECONDS);
        }

        Status status() throws Exception {
            try {
                T v = done.get(30, TimeUnit.SECONDS);
                throw new AssertionError("expected a failure, got " + v);
            } catch (ExecutionException e) {
                return Status.fromThrowable(e.getCause());
            }
        }
    }

    /** The SSD tier, with writes held while a {@link Hold} is set. */
    private static final class GatedTier extends ForwardingKvTier {
        private final SsdTier ssd;
        volatile Hold hold;

        GatedTier(SsdTier ssd) {
            super(ssd);
            this.ssd = ssd;
        }

        @Override
        public PutResult put(KvBlock block, AccessHint hint) {
            Hold h = hold;
            if (h != null) {
                hold = null;
                h.entered.countDown();
                try {
                    if (!h.released.await(30, TimeUnit.SECONDS)) {
                        throw new IllegalStateException("the test never released the held write");
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(e);
                }
            }
            return ssd.put(block, hint);
        }
    }
}
