package io.moemesh.gateway.kvcache;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.ConnectivityState;
import io.grpc.MethodDescriptor;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.kvcache.v1.AttendRequest;
import io.moemesh.proto.kvcache.v1.AttendResponse;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.PinRequest;
import io.moemesh.proto.kvcache.v1.PinResponse;
import io.moemesh.proto.kvcache.v1.UnpinRequest;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.service.kvcache.GetBlocks;
import io.moemesh.service.kvcache.GetReply;
import io.moemesh.service.kvcache.KvGetWire;
import io.moemesh.service.kvcache.LocalBlockReader;
import io.moemesh.service.kvcache.LocalRestore;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The gateway's calls to the kvcache-service (kvcache.v1) for one model and block layout: thin, blocking (but
 * {@link #announce}, which does not wait for its answer), each with a deadline; called on the gateway's own
 * threads, never the engine's. Every answer is checked against the
 * contract before it is used (a block's chunks in order, exactly a block's bytes, the requested index), and a
 * block that breaks it ends the fetch there ({@link BadBlockException}).
 *
 * <p>A service that was down is used again as soon as it is back on its address: after a failed connect grpc-java
 * backs off exponentially up to 2 minutes (connection-backoff.md) and a pick-first channel stays in
 * TRANSIENT_FAILURE until a connect succeeds, failing every call at once meanwhile (gRFC A62), so a kvcache-service
 * restarted by the supervisor would be ignored for minutes (every fetch recomputed, every write-back lost). So each
 * call made while the channel is in TRANSIENT_FAILURE first asks it to reconnect now, at most every
 * {@link #RECONNECT_EVERY_NANOS} (a refused connect on loopback costs microseconds); that call still fails fast,
 * the ones after the reconnect succeed.
 */
public final class KvCacheClient implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KvCacheClient.class);
    /** Largest data chunk of a Put message (the service's Get sends at most this too). */
    static final int CHUNK_BYTES = 1 << 20;
    /**
     * Blocks one kvcache.v1 request may name (the service refuses more: INVALID_ARGUMENT; Attend's tiers reply has one
     * entry per block). An Attend names every block of its sequence's remote prefix: the gateway refuses at startup a
     * block size at which the longest sequence's remote prefix could pass it ({@code KvCacheProperties.Attend#checkRemotePrefix}).
     */
    public static final int MAX_CHAIN_BLOCKS = 65_536;
    /** Room for a message's fields and framing beyond its tensors, bytes. */
    private static final int FRAMING_BYTES = 64 << 10;
    /** Pin ids: random, so that two Pins (of any gateway) never share one. */
    private static final SecureRandom PIN_IDS = new SecureRandom();
    /** Reconnects asked for at most this often while the service is unreachable (1 s). */
    static final long RECONNECT_EVERY_NANOS = TimeUnit.SECONDS.toNanos(1);

    /**
     * The inbound message limit of the channel to the service: {@code configured} (max-inbound-message-bytes, which
     * bounds the expert-services' replies), but never below the largest reply the service sends this client: a Get
     * chunk ({@link #CHUNK_BYTES} of payload) or an Attend reply of {@link AttendOffload#MAX_ROWS} query rows (outputs
     * and log-sum-exp in f32, a tier per block of the longest chain). Below it a restore or an Attend of a large
     * model (Mixtral-8x7B: 4 MiB blocks, so full 1 MiB chunks; Attend replies of 4.2 MB) would fail every time,
     * however small its expert messages are.
     */
    public static int inboundMessageBytes(int configured, int heads, int headDim) {
        long attend = (long) AttendOffload.MAX_ROWS * heads * (headDim + 1) * Float.BYTES + 2L * MAX_CHAIN_BLOCKS;
        long needed = Math.max(CHUNK_BYTES, attend) + FRAMING_BYTES;
        return (int) Math.min(Integer.MAX_VALUE, Math.max(configured, needed));
    }

    private final ManagedChannel channel;
    private final String endpoint;
    private final ByteString fingerprint;
    private final BlockLayout layout;
    private final KvPayload payload;
    /** Get with the zero-copy reply marshaller for this layout's block size (a block arrives with one copy). */
    private final MethodDescriptor<GetRequest, GetReply> getMethod;
    private final AutoCloseable onClose;
    /** Whether {@link #get} reads the SSD blocks from the service's files ({@link LocalRestore}). */
    private final AtomicBoolean localReads = new AtomicBoolean();
    /** The Lookups (whole chains, held blocks, announcements). */
    private final ChainLookups lookups;
    /** The Put streams. */
    private final PutStreams puts;
    /** Read buffers of the local reads (one per concurrent fetch). */
    private final LocalBlockReader localReader = new LocalBlockReader();
    private final AtomicLong localReadBlocks = new AtomicLong();
    private final AtomicLong localReadFailures = new AtomicLong();
    /** {@link System#nanoTime()} of the last reconnect asked for. */
    private final AtomicLong reconnectAskedAt = new AtomicLong(System.nanoTime() - RECONNECT_EVERY_NANOS);

    /**
     * @param onClose closed after the channel (the credentials' reloader), may be null
     */
    public KvCacheClient(ManagedChannel channel, String endpoint, ModelFingerprint fingerprint, KvPayload payload,
                         AutoCloseable onClose) {
        this(channel, endpoint, fingerprint, payload, onClose, false);
    }

    /**
     * @param onClose    closed after the channel (the credentials' reloader), may be null
     * @param localReads restores read the service's segment files on this host ({@link LocalRestore}: the channel
     *                   is the service's peer-uid domain socket); turned off for good if the service refuses
     */
    public KvCacheClient(ManagedChannel channel, String endpoint, ModelFingerprint fingerprint, KvPayload payload,
                         AutoCloseable onClose, boolean localReads) {
        this.localReads.set(localReads);
        this.channel = channel;
        this.endpoint = endpoint;
        this.fingerprint = ByteString.copyFrom(fingerprint.bytes());
        this.payload = payload;
        this.layout = BlockLayout.newBuilder().setBlockTokens(payload.blockTokens()).setNumLayers(payload.layers())
                .setNumKvHeads(payload.kvHeads()).setHeadDim(payload.headDim()).build();
        this.getMethod = KvGetWire.client(payload.bytes());
        this.lookups = new ChainLookups(channel, endpoint, this.fingerprint, layout);
        this.puts = new PutStreams(channel, endpoint, this.fingerprint, layout);
        this.onClose = onClose;
    }

    public String endpoint() {
        return endpoint;
    }

    public KvPayload payload() {
        return payload;
    }

    /** A stored block's payload broke the contract (size, order, index): it and the blocks after it are unused. */
    public static final class BadBlockException extends RuntimeException {
        BadBlockException(String message) {
            super(message);
        }
    }

    /** The class comment's reconnect: called before every call. */
    private void reconnectIfDown() {
        if (channel.getState(false) != ConnectivityState.TRANSIENT_FAILURE) {
            return;
        }
        long now = System.nanoTime();
        long last = reconnectAskedAt.get();
        if (now - last >= RECONNECT_EVERY_NANOS && reconnectAskedAt.compareAndSet(last, now)) {
            channel.resetConnectBackoff();
        }
    }

    /** Length of the leading run of {@code chain} the service stores (a new request, nothing held). */
    public int lookup(List<BlockHash> chain, Duration deadline) {
        return lookup(chain, 0, false, deadline);
    }

    /**
     * Length of the leading run of {@code chain}'s blocks from {@code held} on that the service stores; the request
     * carries the whole chain, so that the service's policy learns the request from block 0 on ({@link
     * ChainLookups#lookup}: also how a service that predates LookupRequest.held_blocks is asked).
     *
     * @param held   leading blocks of {@code chain} this caller holds (0 .. chain.size())
     * @param repeat the sequence was announced before (a resume, a second try): LookupRequest.repeat
     */
    public int lookup(List<BlockHash> chain, int held, boolean repeat, Duration deadline) {
        reconnectIfDown();
        return lookups.lookup(chain, held, repeat, deadline);
    }

    /**
     * Tells the service's policy about a new request that fetches nothing (its blocks held here, or too few missing
     * to be worth a fetch), without building the request, waiting for an answer or blocking ({@link
     * ChainLookups#announce}: queued to its announcer thread, bounded).
     */
    public Announcement announce(List<BlockHash> chain, Duration deadline) {
        reconnectIfDown();
        return lookups.announce(chain, deadline);
    }

    /**
     * A fetched run.
     *
     * @param blocks the payloads of the leading run of the hashes asked for that the service returned, block 0 first
     * @param bad    why the block after them broke the contract (which ended the run there), or null: the run ended
     *               with every block asked for, or at one the service did not return (a miss)
     */
    public record Fetch(List<byte[]> blocks, String bad) {
    }

    /**
     * The payloads of the leading run of {@code hashes} the service returns, in order: it stops at the first block
     * not found. A block whose chunks break the contract ends the run too (the blocks before it are returned;
     * {@link BadBlockException} when it is the first). As {@link #fetch}.
     */
    public List<byte[]> get(List<BlockHash> hashes, Duration deadline) {
        Fetch f = fetch(hashes, deadline);
        if (f.bad() != null && f.blocks().isEmpty()) {
            throw new BadBlockException(f.bad());
        }
        return f.blocks();
    }

    /**
     * The leading run of {@code hashes} the service returns, in order, and whether it ended at a block that broke
     * the contract ({@link Fetch#bad}, also after good blocks, which are kept). The replies are parsed by {@link
     * KvGetWire}'s marshaller straight from gRPC's buffers into the block arrays, on the transport thread that
     * received them, and checked by {@link GetBlocks#run}. With local reads on, a {@code Locate} first, the SSD
     * blocks read from the service's segment files and checked as the service checks them, the rest through Get
     * ({@link LocalRestore}): the same answer.
     */
    public Fetch fetch(List<BlockHash> hashes, Duration deadline) {
        return fetch(hashes, 0, deadline);
    }

    /**
     * As {@link #fetch(List, Duration)}, for {@code hashes} that are the chain's blocks from {@code firstBlock} on
     * (the caller holds the ones before): a {@code Locate} says so (LocateRequest.first_block), so the service
     * records each block's use at its true chain position.
     */
    public Fetch fetch(List<BlockHash> hashes, int firstBlock, Duration deadline) {
        reconnectIfDown();
        int size = payload.bytes();
        CallOptions options = CallOptions.DEFAULT.withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
        try {
            if (localReads.get()) {
                try {
                    LocalRestore.Result r = LocalRestore.restore(channel, getMethod, options, fingerprint, layout,
                            hashes.stream().map(BlockHash::bytes).toList(), firstBlock, size, localReader);
                    localReadBlocks.addAndGet(r.localBlocks());
                    localReadFailures.addAndGet(r.failedReads());
                    return new Fetch(r.blocks(), r.bad() == null ? null : r.bad().getMessage());
                } catch (StatusRuntimeException e) {
                    if (!LocalRestore.isRefusal(e)) {
                        throw e;
                    }
                    localReads.set(false);
                    log.warn("the kvcache-service at {} does not serve local reads ({}): restores use Get from now on",
                            endpoint, e.getStatus().getDescription());
                }
            }
            GetRequest.Builder req = GetRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout);
            for (BlockHash h : hashes) {
                req.addBlockHashes(ByteString.copyFrom(h.bytes()));
            }
            // Read on the transport thread as the replies arrive (no hand-off per message); cancelled once the run
            // ends, so the service stops sending when we stopped reading early.
            GetBlocks.Run r = GetBlocks.run(channel, getMethod, options, req.build(), hashes.size(), size);
            return new Fetch(r.blocks(), r.bad() == null ? null : r.bad().getMessage());
        } catch (GetBlocks.BadReplyException e) {
            // LocalRestore: the run's first block, through Get, broke the contract.
            return new Fetch(List.of(), e.getMessage());
        }
    }

    /** Blocks {@link #get} read from the service's segment files (local reads). */
    public long localReadBlocks() {
        return localReadBlocks.get();
    }

    /** Local reads that failed their read or check (the block and the rest then came through Get). */
    public long localReadFailures() {
        return localReadFailures.get();
    }

    /** Whether {@link #get} reads locally now (off when configured so or after the service refused). */
    public boolean localReads() {
        return localReads.get();
    }

    /**
     * Stores blocks in one Put stream (header, then the payload in chunks of at most 1 MiB, per block) and returns
     * each block's outcome in order.
     *
     * @param payloads the blocks' wire payloads (same order)
     * @throws io.grpc.StatusRuntimeException or {@link IllegalStateException} when the call fails or times out
     */
    public List<PutOutcome> put(List<BlockContents> blocks, List<byte[]> payloads, Duration deadline) {
        return put(blocks, payloads, new boolean[blocks.size()], deadline);
    }

    /** As {@link #put(List, List, boolean[], boolean[], Duration)} with no block of a swap-out. */
    public List<PutOutcome> put(List<BlockContents> blocks, List<byte[]> payloads, boolean[] pinNext,
                                Duration deadline) {
        return put(blocks, payloads, pinNext, new boolean[blocks.size()], deadline);
    }

    /**
     * As {@link #put(List, List, Duration)}, with per block whether it is pinned right after it is stored (the Attend
     * offload's blocks) and whether it is a swap-out's (read back when its sequence resumes): their headers say
     * {@code pin_next} or {@code swap_out}, so the service's admission policy does not decline them (a declined block
     * could not be pinned, and the offload would fail; or it would end the resume's restored run there).
     *
     * @param pinNext per block (same order), whether the caller pins it next
     * @param swapOut per block (same order), whether it is part of a swap-out
     */
    public List<PutOutcome> put(List<BlockContents> blocks, List<byte[]> payloads, boolean[] pinNext,
                                boolean[] swapOut, Duration deadline) {
        reconnectIfDown();
        return puts.put(blocks, payloads, pinNext, swapOut, deadline);
    }

    /**
     * A Pin's answer.
     *
     * @param pinned     per hash, same order, whether it was stored and is now pinned
     * @param idHonoured the answer echoed the pin id (PinResponse.pin_id): the service recorded the pins under it,
     *                   and {@link #unpin(byte[], Duration)} of the id releases them. False: a service that predates
     *                   pin ids ignored it (an Unpin of the id releases nothing there); release by hashes instead
     */
    public record PinAnswer(List<Boolean> pinned, boolean idHonoured) {
    }

    /**
     * Pins each block once under the id {@code pinId} (see {@code Pin}; the service records what it pinned under
     * it). Whatever this throws, the outcome is unknown (the service may have pinned): {@link #unpin(byte[],
     * Duration)} of the id releases exactly what it pinned, if anything (on a service that knows pin ids).
     *
     * @param pinId a fresh 16-byte id ({@link #newPinId})
     * @throws io.grpc.StatusRuntimeException when the call fails or times out
     * @throws IllegalStateException          when the answer does not have one entry per hash, or echoes another id
     */
    public PinAnswer pin(List<BlockHash> hashes, byte[] pinId, Duration deadline) {
        reconnectIfDown();
        ByteString id = ByteString.copyFrom(pinId);
        PinRequest.Builder req = PinRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout)
                .setPinId(id);
        hashes.forEach(h -> req.addBlockHashes(ByteString.copyFrom(h.bytes())));
        PinResponse r = KvCacheServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toNanos(),
                TimeUnit.NANOSECONDS).pin(req.build());
        if (r.getPinnedCount() != hashes.size()) {
            throw new IllegalStateException("Pin of " + hashes.size() + " blocks at " + endpoint + " answered "
                    + r.getPinnedCount());
        }
        if (!r.getPinId().isEmpty() && !r.getPinId().equals(id)) {
            throw new IllegalStateException("Pin at " + endpoint + " answered the pin id of another Pin");
        }
        return new PinAnswer(r.getPinnedList(), !r.getPinId().isEmpty());
    }

    /** A random 16-byte pin id (PinRequest.pin_id): ids of different Pins never meet. */
    public static byte[] newPinId() {
        byte[] id = new byte[16];
        PIN_IDS.nextBytes(id);
        return id;
    }

    /**
     * Releases exactly the pins the Pin of {@code pinId} took (none if it never ran; a Pin of the id arriving later
     * then pins nothing); returns how many it released.
     *
     * @throws io.grpc.StatusRuntimeException when the call fails or times out
     */
    public int unpin(byte[] pinId, Duration deadline) {
        reconnectIfDown();
        UnpinRequest req = UnpinRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout)
                .setPinId(ByteString.copyFrom(pinId)).build();
        return KvCacheServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toNanos(),
                TimeUnit.NANOSECONDS).unpin(req).getReleased();
    }

    /**
     * Releases one pin of each hash (pins nest): for a service that predates pin ids ({@link PinAnswer#idHonoured}
     * false), with exactly the hashes its Pin said it pinned. Returns how many had a pin.
     *
     * @throws io.grpc.StatusRuntimeException when the call fails or times out
     */
    public int unpin(List<BlockHash> hashes, Duration deadline) {
        reconnectIfDown();
        UnpinRequest.Builder req = UnpinRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout);
        hashes.forEach(h -> req.addBlockHashes(ByteString.copyFrom(h.bytes())));
        return KvCacheServiceGrpc.newBlockingStub(channel).withDeadlineAfter(deadline.toNanos(),
                TimeUnit.NANOSECONDS).unpin(req.build()).getReleased();
    }

    /**
     * The {@code Attend} request of {@code tokens} query rows of one sequence at one layer over its blocks
     * {@code [0, blocks.size())} (first_block 0).
     *
     * @param query     {@code [tokens, heads, headDim]} float32 little-endian
     * @param positions the rows' positions, each at or after the blocks' end
     */
    public AttendRequest attendRequest(int layer, int tokens, int heads, ByteString query, long[] positions,
                                       List<ByteString> blocks, float scale) {
        AttendRequest.Builder req = AttendRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout)
                .setLayer(layer).setQuery(Tensor.newBuilder().setDtype(DType.DTYPE_F32).addShape(tokens)
                        .addShape(heads).addShape(payload.headDim()).setData(query))
                .addAllBlockHashes(blocks).setFirstBlock(0).setScale(scale);
        for (long p : positions) {
            req.addPositions(p);
        }
        return req.build();
    }

    /**
     * Sends an {@code Attend} without waiting: the future fails with the call's status (deadline included). Like every
     * call, it first asks a channel in TRANSIENT_FAILURE to reconnect (the class comment): a long sequence attends on
     * every step, so without that a restarted service would fail its Attends for the rest of grpc-java's backoff.
     */
    public com.google.common.util.concurrent.ListenableFuture<AttendResponse> attend(AttendRequest req,
                                                                                    Duration deadline) {
        reconnectIfDown();
        return KvCacheServiceGrpc.newFutureStub(channel).withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS)
                .attend(req);
    }

    @Override
    public void close() {
        lookups.close();
        channel.shutdownNow();
        if (onClose != null) {
            try {
                onClose.close();
            } catch (Exception ignored) {
                // credentials' reload timer: nothing to recover
            }
        }
    }
}
