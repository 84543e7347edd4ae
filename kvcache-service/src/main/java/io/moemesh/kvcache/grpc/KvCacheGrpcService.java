package io.moemesh.kvcache.grpc;

import com.google.protobuf.UnsafeByteOperations;
import io.grpc.BindableService;
import io.grpc.Context;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.Status;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.moemesh.kvcache.attend.BlockAttention;
import io.moemesh.kvcache.attend.PartialAttention;
import io.moemesh.kvcache.attend.StreamingAttention;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.LookupResult;
import io.moemesh.kvcache.tier.PinLedger;
import io.moemesh.kvcache.tier.StoredBlock;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.kvcache.v1.AttendRequest;
import io.moemesh.proto.kvcache.v1.AttendResponse;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LocateRequest;
import io.moemesh.proto.kvcache.v1.LocateResponse;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import io.moemesh.proto.kvcache.v1.PinRequest;
import io.moemesh.proto.kvcache.v1.PinResponse;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.proto.kvcache.v1.StatsRequest;
import io.moemesh.proto.kvcache.v1.StatsResponse;
import io.moemesh.proto.kvcache.v1.UnpinRequest;
import io.moemesh.proto.kvcache.v1.UnpinResponse;
import io.moemesh.service.kvcache.GetReply;
import io.moemesh.service.kvcache.KvGetWire;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * moemesh.kvcache.v1.KvCacheService over the served models' tiered stores; every error goes through
 * {@link KvCacheStatuses}. Calls run on gRPC's executor (SSD reads and writes block it for one record's I/O).
 */
public final class KvCacheGrpcService implements KvCacheServiceGrpc.AsyncService, BindableService {
    /** Query tokens one Attend may carry. */
    static final int MAX_ATTEND_TOKENS = 256;
    /** An Attend request's fields besides its query data, positions and hashes, with their tags and lengths. */
    private static final int ATTEND_OTHER_FIELDS_BYTES = 1024;

    /**
     * The largest Attend request (serialized bytes) a gateway sends for a model with {@code heads} attention heads of
     * {@code headDim}: {@link #MAX_ATTEND_TOKENS} query rows in f32, their positions (int64 varints below 2^31, at
     * most 5 bytes each), the hashes of the longest remote prefix (a gateway ends a sequence at the model's
     * {@code maxPositions}, max_position_embeddings, so at most that many positions of blocks; and never more than
     * {@link KvMessages#MAX_CHAIN_BLOCKS}, since an Attend naming more is refused whatever its size, and a gateway
     * with attend offload refuses to start with a block size whose remote prefix could need more; 34 bytes a hash
     * with its tag and length) and 1 KiB for the other fields. A message limit below it fails the Attend calls of
     * long sequences (RESOURCE_EXHAUSTED) however the rest works.
     */
    public static long largestAttendRequestBytes(int heads, int headDim, int maxPositions, int blockTokens) {
        long query = (long) MAX_ATTEND_TOKENS * heads * headDim * Float.BYTES;
        long positions = MAX_ATTEND_TOKENS * 5L;
        long blocks = Math.min(KvMessages.MAX_CHAIN_BLOCKS, ((long) maxPositions + blockTokens - 1) / blockTokens);
        return query + positions + blocks * (BlockKey.BYTES + 2L) + ATTEND_OTHER_FIELDS_BYTES;
    }

    private final ServedModels models;
    private final KvCacheMetrics metrics;
    /** Each model's pins taken under pin ids, by its store. */
    private final Map<TieredKvStore, PinLedger> ledgers = new IdentityHashMap<>();
    private final PutStreams putStreams;

    /** With at most {@link PutStreams#DEFAULT_MAX_STREAMS} Put streams open at once. */
    public KvCacheGrpcService(ServedModels models, KvCacheMetrics metrics) {
        this(models, metrics, PutStreams.DEFAULT_MAX_STREAMS);
    }

    /** @param maxPutStreams Put streams open at once (moemesh.kvcache.max-put-streams) */
    public KvCacheGrpcService(ServedModels models, KvCacheMetrics metrics, int maxPutStreams) {
        this.models = models;
        this.metrics = metrics;
        this.putStreams = new PutStreams(maxPutStreams);
        models.all().forEach(m -> ledgers.put(m.store(), new PinLedger(m.store())));
    }

    @Override
    public void lookup(LookupRequest req, StreamObserver<LookupResponse> obs) {
        unary(obs, "Lookup", () -> {
            ServedModel m = KvMessages.model(models, req.getModelFingerprint(), req.hasLayout(), req.getLayout());
            List<BlockKey> chain = KvMessages.keys(req.getBlockHashesList(), "block_hashes", 0);
            long held = Integer.toUnsignedLong(req.getHeldBlocks());
            if (held > chain.size()) {
                throw new IllegalArgumentException("held_blocks: " + held + ", but block_hashes has only "
                        + chain.size() + " (the leading blocks of the chain the caller holds)");
            }
            // The gateway's Lookup carries the whole prompt's chain, also the blocks it holds itself: the policy
            // learns the request from it (which conversation it continues, from block 0 on; its think time) before
            // the request's gets and puts arrive. A repeat (a resume, a second try) was announced already: told
            // again, its grown chain would be taken for a next turn of itself.
            if (!req.getRepeat()) {
                m.store().observe(chain, System.currentTimeMillis());
            }
            LookupResult r = m.store().lookup(chain.subList((int) held, chain.size()));
            LookupResponse.Builder out = LookupResponse.newBuilder().setPresentBlocks(r.presentBlocks())
                    .setCountedFrom((int) held);
            r.tiers().forEach(t -> out.addTiers(KvMessages.tier(t)));
            return out.build();
        });
    }

    @Override
    public StreamObserver<PutRequest> put(StreamObserver<PutResponse> obs) {
        return putStreams.open(models, metrics, obs);
    }

    /**
     * The generated service with Get served through {@link KvGetWire#SERVER}'s marshaller: each reply's block bytes
     * are written from the block into gRPC's buffers, with no {@code ByteString} or protobuf buffer between. Same
     * method name, same wire format.
     */
    @Override
    public ServerServiceDefinition bindService() {
        ServerServiceDefinition generated = KvCacheServiceGrpc.bindService(this);
        ServiceDescriptor sd = generated.getServiceDescriptor();
        String get = KvGetWire.SERVER.getFullMethodName();
        ServiceDescriptor.Builder descriptor = ServiceDescriptor.newBuilder(sd.getName())
                .setSchemaDescriptor(sd.getSchemaDescriptor());
        for (ServerMethodDefinition<?, ?> m : generated.getMethods()) {
            descriptor.addMethod(m.getMethodDescriptor().getFullMethodName().equals(get)
                    ? KvGetWire.SERVER : m.getMethodDescriptor());
        }
        ServerServiceDefinition.Builder out = ServerServiceDefinition.builder(descriptor.build());
        for (ServerMethodDefinition<?, ?> m : generated.getMethods()) {
            if (m.getMethodDescriptor().getFullMethodName().equals(get)) {
                out.addMethod(KvGetWire.SERVER, ServerCalls.asyncServerStreamingCall(this::getStream));
            } else {
                out.addMethod(m);
            }
        }
        return out.build();
    }

    private void getStream(GetRequest req, StreamObserver<GetReply> obs) {
        ServedModel m;
        List<BlockKey> keys;
        try {
            m = KvMessages.model(models, req.getModelFingerprint(), req.hasLayout(), req.getLayout());
            keys = KvMessages.keys(req.getBlockHashesList(), "block_hashes", 0);
        } catch (RuntimeException e) {
            obs.onError(KvCacheStatuses.logged("Get", e).asRuntimeException());
            return;
        }
        new GetStream(m, keys, metrics, (ServerCallStreamObserver<GetReply>) obs).start();
    }

    @Override
    public void locate(LocateRequest req, StreamObserver<LocateResponse> obs) {
        unary(obs, "Locate", () -> LocateAnswer.answer(models, req));
    }

    /**
     * Pins through the model's {@link PinLedger}: cancellation is checked before each block and once all are pinned
     * (a Pin that waited out its caller's deadline on the store's lock releases what it pinned and answers
     * CANCELLED), and a {@code pin_id} records what it pinned for an Unpin of the id. The answer echoes the id: a
     * client tells by it that the id was honoured (a service that predates pin ids ignores them, so there it
     * releases by hashes instead).
     */
    @Override
    public void pin(PinRequest req, StreamObserver<PinResponse> obs) {
        unary(obs, "Pin", () -> {
            ServedModel m = KvMessages.model(models, req.getModelFingerprint(), req.hasLayout(), req.getLayout());
            List<BlockKey> keys = KvMessages.keys(req.getBlockHashesList(), "block_hashes", 0);
            Context call = Context.current();
            List<Boolean> pinned = ledger(m).pin(req.getPinId().isEmpty() ? null : req.getPinId().toByteArray(), keys,
                    call::isCancelled);
            return PinResponse.newBuilder().addAllPinned(pinned).setPinId(req.getPinId()).build();
        });
    }

    @Override
    public void unpin(UnpinRequest req, StreamObserver<UnpinResponse> obs) {
        unary(obs, "Unpin", () -> {
            ServedModel m = KvMessages.model(models, req.getModelFingerprint(), req.hasLayout(), req.getLayout());
            UnpinResponse.Builder out = UnpinResponse.newBuilder();
            if (!req.getPinId().isEmpty()) {
                if (req.getBlockHashesCount() > 0) {
                    throw new IllegalArgumentException("block_hashes: must be empty when pin_id is set (an Unpin by "
                            + "pin_id releases exactly what that Pin pinned), got " + req.getBlockHashesCount());
                }
                return out.setReleased(ledger(m).unpin(req.getPinId().toByteArray())).build();
            }
            int released = 0;
            for (BlockKey k : KvMessages.keys(req.getBlockHashesList(), "block_hashes", 0)) {
                boolean one = m.store().unpin(k);
                out.addUnpinned(one);
                released += one ? 1 : 0;
            }
            return out.setReleased(released).build();
        });
    }

    private PinLedger ledger(ServedModel m) {
        return ledgers.get(m.store());
    }

    @Override
    public void stats(StatsRequest req, StreamObserver<StatsResponse> obs) {
        unary(obs, "Stats", () -> {
            StatsResponse.Builder out = StatsResponse.newBuilder();
            models.all().forEach(m -> out.addModels(KvMessages.stats(m)));
            return out.build();
        });
    }

    @Override
    public void attend(AttendRequest req, StreamObserver<AttendResponse> obs) {
        unary(obs, "Attend", () -> attend(req));
    }

    private AttendResponse attend(AttendRequest req) {
        ServedModel m = KvMessages.model(models, req.getModelFingerprint(), req.hasLayout(), req.getLayout());
        KvLayout layout = m.layout();
        long layer = Integer.toUnsignedLong(req.getLayer());
        if (layer >= layout.layers()) {
            throw new IllegalArgumentException("layer: " + layer + " is not in [0, " + layout.layers() + ")");
        }
        int heads = m.numHeads();
        int dim = layout.headDim();
        Tensor q = req.getQuery();
        if (q.hasRegion()) {
            // tensor.proto: shared-memory regions are ExpertBatch's; here the data must be in the message
            throw new IllegalArgumentException("query.region: a shared-memory region is accepted by ExpertBatch only; "
                    + "send the query in query.data");
        }
        if (q.getDtype() != DType.DTYPE_F32 || q.getShapeCount() != 3 || q.getShape(1) != heads
                || q.getShape(2) != dim || q.getShape(0) < 1 || q.getShape(0) > MAX_ATTEND_TOKENS) {
            throw new IllegalArgumentException("query: must be DTYPE_F32 [num_tokens, " + heads + ", " + dim
                    + "] with 1 <= num_tokens <= " + MAX_ATTEND_TOKENS + ", got " + q.getDtype() + " "
                    + q.getShapeList());
        }
        int tokens = (int) q.getShape(0);
        if (q.getData().size() != (long) tokens * heads * dim * Float.BYTES) {
            throw new IllegalArgumentException("query: " + q.getData().size() + " data bytes, expected "
                    + (long) tokens * heads * dim * Float.BYTES);
        }
        if (req.getPositionsCount() != tokens) {
            throw new IllegalArgumentException("positions: " + req.getPositionsCount() + " positions for " + tokens
                    + " query tokens");
        }
        List<BlockKey> keys = KvMessages.keys(req.getBlockHashesList(), "block_hashes", 1);
        int bt = layout.blockTokens();
        long first = Integer.toUnsignedLong(req.getFirstBlock()) * bt;
        long end = first + (long) keys.size() * bt;
        if (end > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("first_block: blocks " + req.getFirstBlock() + " .. "
                    + (Integer.toUnsignedLong(req.getFirstBlock()) + keys.size()) + " reach past position 2^31");
        }
        for (int t = 0; t < tokens; t++) {
            long p = req.getPositions(t);
            if (p < first || p > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("positions[" + t + "]: " + p + " is not in [" + first + ", 2^31): "
                        + "the blocks start at position " + first + " (first_block " + req.getFirstBlock()
                        + " of " + bt + " tokens), and a query attends only to positions up to its own");
            }
        }
        float scale = req.getScale() == 0 ? BlockAttention.defaultScale(dim) : req.getScale();
        if (!(scale > 0) || !Float.isFinite(scale)) {
            throw new IllegalArgumentException("scale: must be finite and > 0 (or 0 for 1/sqrt(head_dim)), got "
                    + req.getScale());
        }
        long start = System.nanoTime();
        float[] query = new float[tokens * heads * dim];
        q.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(query);
        int[] visible = new int[tokens];
        for (int t = 0; t < tokens; t++) {
            visible[t] = (int) Math.min(end - first, req.getPositions(t) - first + 1);
        }
        StreamingAttention attention = new StreamingAttention(query, heads, layout, (int) layer, visible, scale);
        AttendResponse.Builder out = AttendResponse.newBuilder();
        // One block at a time, folded into the running softmax and let go: a block holds every layer's K/V (4 MiB
        // for Mixtral) and a call may name 65,536 of them, so holding them all could exhaust the heap.
        Context call = Context.current();
        for (int i = 0; i < keys.size(); i++) {
            if (call.isCancelled()) {
                // The caller gave up (cancel, deadline): its answer would not be sent, so read nothing more.
                throw Status.CANCELLED.withDescription("Attend: the call was cancelled after " + i + " of "
                        + keys.size() + " blocks").asRuntimeException();
            }
            long t0 = System.nanoTime();
            Optional<StoredBlock> b = m.store().get(keys.get(i),
                    AccessHint.atChainPosition((int) (req.getFirstBlock() + (long) i)));
            metrics.restored(m, System.nanoTime() - t0);
            if (b.isEmpty()) {
                throw Status.NOT_FOUND.withDescription("block_hashes[" + i + "]: the block is not stored")
                        .asRuntimeException();
            }
            out.addTiers(KvMessages.tier(b.get().tier()));
            attention.add(b.get().block());
        }
        ByteBuffer outputs = ByteBuffer.allocate(query.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer lse = ByteBuffer.allocate(tokens * heads * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (int t = 0; t < tokens; t++) {
            PartialAttention p = attention.result(t);
            for (float f : p.output()) {
                outputs.putFloat(f);
            }
            for (float f : p.lse()) {
                lse.putFloat(f);
            }
        }
        return out.setOutputs(Tensor.newBuilder().setDtype(DType.DTYPE_F32).addShape(tokens).addShape(heads)
                        .addShape(dim).setData(UnsafeByteOperations.unsafeWrap(outputs.array())))
                .setLse(Tensor.newBuilder().setDtype(DType.DTYPE_F32).addShape(tokens).addShape(heads)
                        .setData(UnsafeByteOperations.unsafeWrap(lse.array())))
                .setComputeMicros((System.nanoTime() - start) / 1000).build();
    }

    private static <T> void unary(StreamObserver<T> obs, String method, Supplier<T> body) {
        T response;
        try {
            response = body.get();
        } catch (RuntimeException e) {
            obs.onError(KvCacheStatuses.logged(method, e).asRuntimeException());
            return;
        }
        obs.onNext(response);
        obs.onCompleted();
    }
}
