package io.moemesh.kvcache.grpc;

import io.grpc.stub.ServerCallStreamObserver;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.tier.StoredBlock;
import io.moemesh.proto.kvcache.v1.Tier;
import io.moemesh.service.kvcache.GetReply;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Optional;

/**
 * One Get stream, sent as fast as the client reads it: chunks go out only while the call is ready (gRPC's
 * outbound flow control), and the rest waits for the next on-ready callback, so a slow reader of a long prefix
 * holds about {@link #READY_THRESHOLD_BYTES} in memory (a few blocks), not the whole answer. A block is read from
 * the store when its first chunk is due, by {@link io.moemesh.kvcache.tier.TieredKvStore#restore} (a lower-tier
 * block is promoted only into free DRAM: a long prefix streaming out does not flush DRAM nor cost a demotion write
 * per block); the chunks are views of the block's own array ({@link io.moemesh.kvcache.block.KvBlock#arrayView}: never
 * written), which the reply marshaller ({@link io.moemesh.service.kvcache.GetReplyMarshaller}) copies into gRPC's
 * buffers in one pass (through a read-only view it needed a scratch array and a second pass).
 *
 * <p>The call counts as ready until {@link #READY_THRESHOLD_BYTES} are queued in the transport (gRPC's default is
 * 32 KiB, less than one block): so the next blocks are read from the tier while the previous ones are on the wire,
 * instead of each read waiting for the previous block to be sent and the next on-ready callback to be scheduled
 * (four thread hand-offs per block, which a loaded machine serialises: docs/performance.md, "KV-cache restore").
 */
final class GetStream implements Runnable {
    /** Bytes the transport may queue before the call stops being ready: a few blocks of a large model. */
    static final int READY_THRESHOLD_BYTES = 4 << 20;

    private final ServedModel model;
    private final List<BlockKey> keys;
    private final KvCacheMetrics metrics;
    private final ServerCallStreamObserver<GetReply> obs;
    private int next;
    /** The block being sent, its index and tier; null between blocks. */
    private ByteBuffer current;
    private int currentIndex;
    private Tier currentTier;
    private boolean done;

    GetStream(ServedModel model, List<BlockKey> keys, KvCacheMetrics metrics, ServerCallStreamObserver<GetReply> obs) {
        this.model = model;
        this.keys = keys;
        this.metrics = metrics;
        this.obs = obs;
    }

    void start() {
        obs.setOnReadyThreshold(READY_THRESHOLD_BYTES);
        obs.setOnCancelHandler(this::cancelled);
        obs.setOnReadyHandler(this);
        run();
    }

    private synchronized void cancelled() {
        done = true;
        current = null;
    }

    /** Sends while the call is ready; called at start and on every on-ready callback. */
    @Override
    public synchronized void run() {
        try {
            while (!done && obs.isReady()) {
                if (current == null) {
                    if (next == keys.size()) {
                        done = true;
                        obs.onCompleted();
                        return;
                    }
                    int i = next++;
                    long t0 = System.nanoTime();
                    Optional<StoredBlock> b = model.store().restore(keys.get(i), AccessHint.NONE);
                    metrics.restored(model, System.nanoTime() - t0);
                    if (b.isEmpty()) {
                        obs.onNext(GetReply.miss(i));
                        continue;
                    }
                    // the block's own array: the marshaller writes it into gRPC's buffers in one copy
                    current = b.get().block().arrayView();
                    currentIndex = i;
                    currentTier = KvMessages.tier(b.get().tier());
                }
                int offset = current.position();
                int n = Math.min(KvMessages.MAX_CHUNK_BYTES, current.remaining());
                ByteBuffer chunk = current.slice(offset, n);
                current.position(offset + n);
                boolean last = !current.hasRemaining();
                obs.onNext(GetReply.chunk(currentIndex, currentTier, offset, chunk, last));
                if (last) {
                    current = null;
                }
            }
        } catch (RuntimeException e) {
            done = true;
            current = null;
            obs.onError(KvCacheStatuses.logged("Get", e).asRuntimeException());
        }
    }
}
