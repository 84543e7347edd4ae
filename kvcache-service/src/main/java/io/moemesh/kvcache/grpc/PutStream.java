package io.moemesh.kvcache.grpc;

import com.google.protobuf.ByteString;
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

/**
 * One Put stream. Each block's payload is gathered into a buffer of exactly its layout's size and handed to the
 * store only once complete, so the store never sees a partial block: a stream that errs, is cancelled or ends
 * midway drops the buffer and nothing of that block was ever stored. gRPC delivers a stream's messages one at a
 * time, so no field needs a lock.
 */
final class PutStream implements StreamObserver<PutRequest> {
    private final ServedModels models;
    private final KvCacheMetrics metrics;
    private final StreamObserver<PutResponse> obs;
    private final PutResponse.Builder results = PutResponse.newBuilder();
    private boolean failed;
    /** The block being received, or null between blocks. */
    private Pending pending;

    private record Pending(ServedModel model, BlockKey key, AccessHint hint, boolean pinNext, ByteBuffer payload) {
    }

    PutStream(ServedModels models, KvCacheMetrics metrics, StreamObserver<PutResponse> obs) {
        this.models = models;
        this.metrics = metrics;
        this.obs = obs;
    }

    @Override
    public void onNext(PutRequest req) {
        if (failed) {
            return;
        }
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
        return new Pending(m, key, AccessHint.atChainPosition(h.getChainPosition()), h.getPinNext(),
                ByteBuffer.allocate(layout.bytesPerBlock()));
    }

    private void append(ByteString data) {
        if (pending == null) {
            throw new IllegalArgumentException("blocks[" + results.getResultsCount() + "].data: bytes without a "
                    + "header (a block starts with a PutRequest carrying its header)");
        }
        ByteBuffer buf = pending.payload();
        if (data.size() > buf.remaining()) {
            throw new IllegalArgumentException("blocks[" + results.getResultsCount() + "].data: "
                    + ((long) buf.position() + data.size()) + " bytes sent, but a block of "
                    + pending.model().layout() + " has " + buf.capacity() + " bytes (oversize put)");
        }
        data.copyTo(buf);
        if (!buf.hasRemaining()) {
            store();
        }
    }

    private void store() {
        Pending p = pending;
        pending = null;
        p.payload().flip();
        KvBlock block = KvBlock.wrapOwned(p.key(), p.model().layout(), p.payload());
        long t0 = System.nanoTime();
        StoreResult r;
        try {
            r = p.model().store().put(block, p.hint(), p.pinNext());
        } catch (IllegalArgumentException e) {
            // The block has the model's layout by construction: what the store refuses is its values (non-finite
            // ones under int8 SSD storage, which would be dropped at demotion after an acknowledgement).
            throw new IllegalArgumentException("blocks[" + results.getResultsCount() + "].data: " + e.getMessage()
                    + "; the block was not stored", e);
        }
        metrics.stored(p.model(), System.nanoTime() - t0);
        PutOutcome outcome = switch (r.result()) {
            case STORED -> PutOutcome.PUT_OUTCOME_STORED;
            case ALREADY_PRESENT -> PutOutcome.PUT_OUTCOME_ALREADY_PRESENT;
            case DECLINED -> PutOutcome.PUT_OUTCOME_DECLINED;
            case NO_SPACE -> PutOutcome.PUT_OUTCOME_NO_SPACE;
        };
        results.addResults(PutResult.newBuilder().setBlockHash(ByteString.copyFrom(p.key().bytes()))
                .setOutcome(outcome).setTier(r.tier().map(KvMessages::tier).orElse(Tier.TIER_UNSPECIFIED)));
    }

    private IllegalArgumentException incomplete(String what) {
        ByteBuffer buf = pending.payload();
        return new IllegalArgumentException("blocks[" + results.getResultsCount() + "].data: " + what + " after "
                + buf.position() + " of the block's " + buf.capacity() + " bytes; the incomplete block was not stored");
    }

    private void fail(RuntimeException e) {
        failed = true;
        pending = null;
        obs.onError(KvCacheStatuses.logged("Put", e).asRuntimeException());
    }

    /** The client failed or cancelled the stream: the incomplete block (if any) is dropped, never stored. */
    @Override
    public void onError(Throwable t) {
        pending = null;
        failed = true;
    }

    @Override
    public void onCompleted() {
        if (failed) {
            return;
        }
        if (pending != null) {
            fail(incomplete("the stream ended"));
            return;
        }
        obs.onNext(results.build());
        obs.onCompleted();
    }
}
