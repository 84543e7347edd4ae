package io.moemesh.kvcache.grpc;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.StoreResult;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.proto.kvcache.v1.PutBlockHeader;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.proto.kvcache.v1.PutResult;
import io.moemesh.proto.kvcache.v1.Tier;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;

/**
 * One Put stream. Each block's payload is gathered into a buffer and handed to the store only once complete, so the
 * store never sees a partial block: a stream that errs, is cancelled or ends midway drops the buffer and nothing of
 * that block was ever stored. The buffer grows with the bytes received (doubling, so at most twice them, and never
 * past the block's size): a header alone reserves nothing, and {@link PutStreams} bounds the streams open at once.
 * gRPC delivers a stream's messages one at a time; the lock is for {@link #endIfIdle}, called from another stream's
 * thread, which only tries it: a message may take long (storing a block waits for the store's lock, held across a
 * demotion to SSD), and a new stream must neither wait for it nor end a stream that is busy storing.
 */
final class PutStream implements StreamObserver<PutRequest> {
    private static final byte[] EMPTY = new byte[0];

    private final ServedModels models;
    private final KvCacheMetrics metrics;
    private final StreamObserver<PutResponse> obs;
    private final PutStreams streams;
    private final LongSupplier clock;
    private final PutResponse.Builder results = PutResponse.newBuilder();
    /** Guards the stream's state: its messages, its end, and {@link #endIfIdle}, which only tries it. */
    private final ReentrantLock lock = new ReentrantLock();
    /** Answered, failed or cancelled: later messages are dropped. */
    private boolean ended;
    /** {@link #clock} time the last message was done with (or of the open). */
    private volatile long lastMessageNanos;
    /** The block being received, or null between blocks. */
    private Pending pending;

    /** A block being received: {@code received} bytes of {@code blockBytes} so far, in {@code buf}. */
    private static final class Pending {
        final ServedModel model;
        final BlockKey key;
        final AccessHint hint;
        /** The admission policy is not asked (the header's pin_next or swap_out). */
        final boolean unasked;
        final int blockBytes;
        byte[] buf = EMPTY;
        int received;

        Pending(ServedModel model, BlockKey key, AccessHint hint, boolean unasked) {
            this.model = model;
            this.key = key;
            this.hint = hint;
            this.unasked = unasked;
            this.blockBytes = model.layout().bytesPerBlock();
        }
    }

    PutStream(ServedModels models, KvCacheMetrics metrics, StreamObserver<PutResponse> obs, PutStreams streams,
              LongSupplier clock) {
        this.models = models;
        this.metrics = metrics;
        this.obs = obs;
        this.streams = streams;
        this.clock = clock;
        this.lastMessageNanos = clock.getAsLong();
    }

    /** Bytes the stream's buffer holds now (its block's received bytes, at most twice them). */
    int bufferedBytes() {
        lock.lock();
        try {
            return pending == null ? 0 : pending.buf.length;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void onNext(PutRequest req) {
        lock.lock();
        try {
            if (!ended) {
                take(req);
            }
        } finally {
            // When it was done with, not when it came: a store that took long does not make the stream look idle.
            lastMessageNanos = clock.getAsLong();
            lock.unlock();
        }
    }

    private void take(PutRequest req) {
        try {
            if (!req.hasHeader() && req.getData().isEmpty()) {
                throw new IllegalArgumentException("blocks[" + results.getResultsCount() + "]: a PutRequest needs a "
                        + "header or data");
            }
            if (req.hasHeader()) {
                if (pending != null) {
                    throw incomplete("header: a new block began");
                }
                pending = begin(req.getHeader());
            }
            if (!req.getData().isEmpty()) {
                append(req.getData());
            }
        } catch (RuntimeException e) {
            fail(e);
        }
    }

    private Pending begin(PutBlockHeader h) {
        String at = "blocks[" + results.getResultsCount() + "].";
        ServedModel m;
        BlockKey key;
        try {
            m = KvMessages.model(models, h.getModelFingerprint(), h.hasLayout(), h.getLayout());
            key = KvMessages.key(h.getBlockHash(), "block_hash");
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(at + "header." + e.getMessage(), e);
        } catch (IllegalStateException e) {
            throw new IllegalStateException(at + "header." + e.getMessage(), e);
        }
        KvLayout layout = m.layout();
        if (h.getTokenIdsCount() != layout.blockTokens()) {
            throw new IllegalArgumentException(at + "header.token_ids: " + h.getTokenIdsCount() + " token ids, a block "
                    + "has " + layout.blockTokens());
        }
        if (h.getParentHash().size() != BlockHash.BYTES) {
            throw new IllegalArgumentException(at + "header.parent_hash: a block hash has " + BlockHash.BYTES
                    + " bytes (32 zero bytes for block 0), got " + h.getParentHash().size());
        }
        int[] tokens = h.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
        BlockHash expected = BlockHash.of(BlockHash.fromBytes(h.getParentHash().toByteArray()), tokens, 0,
                tokens.length, m.fingerprint(), h.getTenant());
        if (!Arrays.equals(expected.bytes(), key.bytes())) {
            throw new IllegalArgumentException(at + "header.block_hash: does not match parent_hash, token_ids, the "
                    + "model fingerprint and tenant (BlockHash): the block would be stored under a key that does not "
                    + "describe its tokens");
        }
        if (h.getChainPosition() < 0) {
            throw new IllegalArgumentException(at + "header.chain_position: " + Integer.toUnsignedLong(h.getChainPosition())
                    + " is past 2^31");
        }
        // No buffer yet: it grows with the data (a header alone must not reserve a block, 4 MiB for Mixtral).
        // Pinned right after (an Attend offload) or read back on a resume (a swap-out): not the policy's to decline.
        return new Pending(m, key, AccessHint.atChainPosition(h.getChainPosition()), h.getPinNext() || h.getSwapOut());
    }

    private void append(ByteString data) {
        if (pending == null) {
            throw new IllegalArgumentException("blocks[" + results.getResultsCount() + "].data: bytes without a "
                    + "header (a block starts with a PutRequest carrying its header)");
        }
        Pending p = pending;
        long needed = (long) p.received + data.size();
        if (needed > p.blockBytes) {
            throw new IllegalArgumentException("blocks[" + results.getResultsCount() + "].data: " + needed
                    + " bytes sent, but a block of " + p.model.layout() + " has " + p.blockBytes
                    + " bytes (oversize put)");
        }
        if (needed > p.buf.length) {
            // Doubling: at most twice the bytes received, a few copies per block; never past the block's size.
            p.buf = Arrays.copyOf(p.buf, (int) Math.min(p.blockBytes, Math.max(needed, 2L * p.buf.length)));
        }
        data.copyTo(p.buf, p.received);
        p.received = (int) needed;
        if (p.received == p.blockBytes) {
            store();
        }
    }

    private void store() {
        Pending p = pending;
        pending = null;
        KvBlock block = KvBlock.wrapOwned(p.key, p.model.layout(), ByteBuffer.wrap(p.buf));
        long t0 = System.nanoTime();
        StoreResult r;
        try {
            r = p.model.store().put(block, p.hint, p.unasked);
        } catch (IllegalArgumentException e) {
            // The block has the model's layout by construction: what the store refuses is its values (non-finite
            // ones under int8 SSD storage, which would be dropped at demotion after an acknowledgement).
            throw new IllegalArgumentException("blocks[" + results.getResultsCount() + "].data: " + e.getMessage()
                    + "; the block was not stored", e);
        }
        metrics.stored(p.model, System.nanoTime() - t0);
        PutOutcome outcome = switch (r.result()) {
            case STORED -> PutOutcome.PUT_OUTCOME_STORED;
            case ALREADY_PRESENT -> PutOutcome.PUT_OUTCOME_ALREADY_PRESENT;
            case DECLINED -> PutOutcome.PUT_OUTCOME_DECLINED;
            case NO_SPACE -> PutOutcome.PUT_OUTCOME_NO_SPACE;
        };
        results.addResults(PutResult.newBuilder().setBlockHash(ByteString.copyFrom(p.key.bytes()))
                .setOutcome(outcome).setTier(r.tier().map(KvMessages::tier).orElse(Tier.TIER_UNSPECIFIED)));
    }

    private IllegalArgumentException incomplete(String what) {
        return new IllegalArgumentException("blocks[" + results.getResultsCount() + "].data: " + what + " after "
                + pending.received + " of the block's " + pending.blockBytes + " bytes; the incomplete block was not "
                + "stored");
    }

    private void fail(RuntimeException e) {
        ended = true;
        pending = null;
        streams.closed(this);
        obs.onError(KvCacheStatuses.logged("Put", e).asRuntimeException());
    }

    /**
     * Ends the stream (RESOURCE_EXHAUSTED; its incomplete block is not stored) when it had no message for
     * {@code idleNanos}: {@link PutStreams} makes room for a new stream when {@code maxStreams} are open.
     */
    void endIfIdle(long now, long idleNanos, int maxStreams) {
        // Only tried: a stream in a message (storing a block, perhaps behind a demotion to SSD) is busy, not idle,
        // and the caller, a gRPC thread opening a new stream, must not wait for it.
        if (now - lastMessageNanos < idleNanos || !lock.tryLock()) {
            return;
        }
        try {
            if (ended || now - lastMessageNanos < idleNanos) {
                return;
            }
            fail(Status.RESOURCE_EXHAUSTED.withDescription("Put: no message for "
                    + TimeUnit.NANOSECONDS.toSeconds(idleNanos) + " s while " + maxStreams + " Put streams were open "
                    + "(moemesh.kvcache.max-put-streams): ended to make room; an incomplete block was not stored")
                    .asRuntimeException());
        } finally {
            lock.unlock();
        }
    }

    /** The client ended or cancelled the stream: the incomplete block (if any) is dropped, never stored. */
    @Override
    public void onError(Throwable t) {
        lock.lock();
        try {
            pending = null;
            ended = true;
            streams.closed(this);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void onCompleted() {
        lock.lock();
        try {
            if (ended) {
                return;
            }
            if (pending != null) {
                fail(incomplete("the stream ended"));
                return;
            }
            ended = true; // answered: nothing more is taken
            streams.closed(this);
            obs.onNext(results.build());
            obs.onCompleted();
        } finally {
            lock.unlock();
        }
    }
}
