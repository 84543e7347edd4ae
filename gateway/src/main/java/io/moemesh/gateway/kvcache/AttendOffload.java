package io.moemesh.gateway.kvcache;

import com.google.common.util.concurrent.ListenableFuture;
import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.Status;
import io.moemesh.gateway.serving.SequenceCaps;
import io.moemesh.model.engine.RemoteAttention;
import io.moemesh.model.engine.RemoteAttentionBatch;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.BlockOffload;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.kvcache.v1.AttendRequest;
import io.moemesh.proto.kvcache.v1.AttendResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Long contexts over the kvcache-service's {@code Attend} (issue 11, item 3; InstInfer, Pan et al. 2024): a
 * sequence whose final positions reach {@code thresholdTokens} keeps its last {@code localBlocks} full blocks (and
 * the one being filled) in the gateway's pool; its older full blocks are stored in the service, pinned for the
 * sequence's life, and let go of locally ({@link BlockOffload}, driven by the cache: {@link
 * io.moemesh.model.kv.PrefixCachingKvCache#setBlockOffload}); the engine then asks for attention over them per
 * layer per step ({@link RemoteAttention}) and merges the partials exactly with its local ones.
 *
 * <p><b>Offload</b> (a gateway thread, never the engine's): the blocks go through the {@link WriteBack} queue
 * ahead of everything else ({@link WriteBack#writeFirst}; blocks it already stored are not sent again), marked
 * {@code pin_next} so the service's admission policy does not decline them, then one {@code Pin} for them all.
 * Blocks that Pin finds not stored (the write-back remembered them stored, but the service evicted or lost them
 * since) are forgotten by the write-back, sent again and pinned by a second Pin, once. Any block not stored (no
 * space, Put failed) or still not pinned, a service that is down, or more than {@code offloadTimeout}: the offload
 * reports false and the sequence stays local for good (no failure, no more retries against a failing service; it
 * ends with finish reason length where the local pool ends, see {@link #positions}); what it pinned is unpinned at
 * once, or, when a Pin answered only after the timeout, with the sequence's other pins when it ends, and its blocks
 * still queued for writing are withdrawn ({@link WriteBack#withdraw}).
 *
 * <p>Each Pin carries a fresh random pin id and every release is an Unpin of that id, which releases exactly what
 * that Pin pinned, also after a Pin that failed on this side ({@link OffloadPins}: why, and how a service that
 * predates pin ids is released, by the hashes its answer said pinned).
 *
 * <p><b>Attend</b>: in {@link #start}, one asynchronous call per sequence of the batch (a sequence's rows are
 * consecutive; more than 256 rows, a prefill chunk, go in several), each with a deadline of {@code attendTimeout};
 * {@link #await} waits for all of them. A call that fails or misses its deadline fails the step ({@link
 * io.moemesh.model.engine.RemoteAttentionException}, mapped to HTTP 503 / gRPC UNAVAILABLE): the positions it
 * covered are no longer held locally, and computing the step without them would produce a wrong token. The
 * request fails; its blocks stay in the service (and, until evicted, in the local cache as cached blocks), so a
 * retry finds its prefix again.
 *
 * <p><b>Pins</b> are released, asynchronously, whenever the cache releases the sequence (finish, cancel, failed
 * step, preemption: the cache's {@code release} is on every one of those paths), and for an offload still in flight
 * when it lands. An Unpin of a pin id that fails is tried again ({@link OffloadPins#UNPIN_ATTEMPTS} times in all),
 * then logged: the service forgets pins on restart.
 */
public final class AttendOffload implements BlockOffload, RemoteAttention, SequenceCaps, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(AttendOffload.class);
    /** Query rows one Attend may carry (kvcache.v1 AttendRequest.query). */
    static final int MAX_ROWS = 256;

    private final KvCacheClient client;
    private final WriteBack writeBack;
    private final int thresholdTokens;
    private final int localBlocks;
    private final Duration attendTimeout;
    private final Duration offloadTimeout;
    private final int blockTokens;
    private final ExecutorService pins;
    /** The Pins, on {@link #pins}, and their release. */
    private final OffloadPins offloadPins;
    /** Full blocks of the gateway's pool: all a sequence can hold locally. */
    private final int poolBlocks;
    private volatile LongConsumer lowered = id -> { };
    /** Wakes the engine loop when an offload settles (see {@link #setWakeUp}). */
    private volatile Runnable wakeUp = () -> { };
    /** Sequence → the blocks pinned for it, block 0 first (the remote prefix's hashes). */
    private final Map<Long, Pinned> pinned = new ConcurrentHashMap<>();
    /** Engine thread only: the calls of the current layer. */
    private final List<Call> calls = new ArrayList<>();
    private final AtomicLong offloadedBlocks = new AtomicLong();
    private final AtomicLong offloadFailures = new AtomicLong();
    private final AtomicLong attendCalls = new AtomicLong();
    private final AtomicLong attendFailures = new AtomicLong();
    private final AtomicLong attendWireBytes = new AtomicLong();

    /** One sequence's pins; closed once the cache released the sequence. */
    private static final class Pinned {
        final List<BlockHash> chain = new ArrayList<>();
        /** The Pins that pinned {@link #chain}, one per offload: what {@link #released} unpins. */
        final List<OffloadPins.Taken> taken = new ArrayList<>();
        boolean closed;
        /** Blocks of offloads reported done (the cache's remote prefix); chain may hold more, pinned too late. */
        int remote;
        /** An offload failed: the cache keeps the sequence local from now on (until it releases it). */
        volatile boolean failed;
    }

    /** One Attend in flight: batch rows [from, from + rows). */
    private record Call(int from, int rows, long seqId, int requestBytes, ListenableFuture<AttendResponse> answer) {
    }

    /**
     * @param thresholdTokens final positions from which a sequence offloads (≥ 1)
     * @param localBlocks     most recent full blocks a long sequence keeps locally (≥ 0)
     * @param attendTimeout   deadline of one layer's Attend calls
     * @param offloadTimeout  how long an offload (Put and Pin) may take before the sequence stays local
     * @param poolBlocks      blocks of the gateway's KV pool: what a sequence whose offload failed can hold locally
     */
    public AttendOffload(KvCacheClient client, WriteBack writeBack, int thresholdTokens, int localBlocks,
                         Duration attendTimeout, Duration offloadTimeout, int poolBlocks) {
        if (thresholdTokens < 1 || localBlocks < 0) {
            throw new IllegalArgumentException("an Attend offload needs threshold-tokens >= 1 and local-blocks >= 0, got "
                    + thresholdTokens + " and " + localBlocks);
        }
        this.client = client;
        this.writeBack = writeBack;
        this.thresholdTokens = thresholdTokens;
        this.localBlocks = localBlocks;
        this.attendTimeout = attendTimeout;
        this.offloadTimeout = offloadTimeout;
        this.poolBlocks = poolBlocks;
        this.blockTokens = client.payload().blockTokens();
        this.pins = Executors.newSingleThreadExecutor(Thread.ofPlatform().name("moemesh-kv-attend-pins").daemon()
                .factory());
        this.offloadPins = new OffloadPins(client, pins, offloadTimeout);
    }

    // ---- BlockOffload (engine thread, never blocks) ----

    @Override
    public int remoteBlocks(int length) {
        return length < thresholdTokens ? 0 : Math.max(0, length / blockTokens - localBlocks);
    }

    @Override
    public CompletableFuture<Boolean> offload(long seqId, List<BlockContents> blocks) {
        Pinned p = pinned.computeIfAbsent(seqId, k -> new Pinned());
        List<BlockHash> hashes = blocks.stream().map(BlockContents::hash).toList();
        CompletableFuture<Boolean> done;
        try {
            // pin_next: pinned right after, so the service's admission policy may not decline them.
            done = writeBack.writeFirstStored(blocks, hashes, true)
                    .thenComposeAsync(stored -> pin(p, blocks, hashes, stored), pins);
        } catch (RuntimeException e) {
            done = CompletableFuture.failedFuture(e);
        }
        CompletableFuture<Boolean> settled = done.orTimeout(offloadTimeout.toNanos(), TimeUnit.NANOSECONDS)
                .handle((ok, e) -> settle(seqId, p, hashes, ok, e));
        // A prompt longer than the pool waits, with nothing else to run, for this offload to move its remote prefix
        // on (StepScheduler's next chunk): wake the loop rather than let it sleep out its idle poll.
        settled.whenComplete((ok, e) -> wakeUp.run());
        return settled;
    }

    /** Counts an offload's outcome; a failed one caps its sequence by the local pool from now on. */
    private boolean settle(long seqId, Pinned p, List<BlockHash> hashes, Boolean ok, Throwable e) {
        if (e != null || !ok) {
            offloadFailures.incrementAndGet();
            log.debug("offload of {} KV blocks of sequence {} to {} failed (it stays local): {}", hashes.size(), seqId,
                    client.endpoint(), e == null ? "not stored or not pinned" : e.toString());
            // Its copies still queued (past the timeout) are of no use to it now: freed, not left to pile up.
            writeBack.withdraw(hashes);
            // Still the sequence's own pins (not a released one's): from now on it is capped by the local pool.
            if (pinned.get(seqId) == p) {
                p.failed = true;
                lowered.accept(seqId);
            }
            return false;
        }
        synchronized (p) {
            p.remote += hashes.size();
        }
        offloadedBlocks.addAndGet(hashes.size());
        return true;
    }

    /** Called, on any thread, whenever an offload settles (stored and pinned, or failed). Set once, before serving. */
    public void setWakeUp(Runnable wakeUp) {
        this.wakeUp = wakeUp;
    }

    /**
     * On the pin thread: every block stored ({@code stored}: acknowledged to this offload's write, {@link
     * WriteBack#writeFirstStored}, not looked up in the write-back's bounded memory, which an offload larger than
     * {@code remembered-blocks} would overflow), then pinned for the sequence. Blocks the Pin finds not stored,
     * though the write-back remembered them stored (the service evicted them since, lost them in a restart, or they
     * were never re-sent because of that memory), are forgotten there ({@link WriteBack#notStored}), sent again and
     * pinned by a second Pin, once; the first Pin's pins are held meanwhile.
     */
    private CompletableFuture<Boolean> pin(Pinned p, List<BlockContents> blocks, List<BlockHash> hashes,
                                           boolean stored) {
        if (!stored) {
            return CompletableFuture.completedFuture(false);
        }
        OffloadPins.Answer a = offloadPins.pin(hashes); // a failure was released (by its id) before it is thrown
        List<BlockContents> missing = new ArrayList<>();
        for (int i = 0; i < hashes.size(); i++) {
            if (!a.pinned().get(i)) {
                writeBack.notStored(hashes.get(i));
                missing.add(blocks.get(i));
            }
        }
        if (missing.isEmpty()) {
            return CompletableFuture.completedFuture(keep(p, hashes, List.of(a.taken())));
        }
        boolean closed;
        synchronized (p) {
            closed = p.closed;
        }
        if (closed) {
            offloadPins.release(a.taken());
            return CompletableFuture.completedFuture(false);
        }
        log.debug("{} of {} KV blocks of an offload were gone from {}: sent again", missing.size(), hashes.size(),
                client.endpoint());
        List<BlockHash> again = missing.stream().map(BlockContents::hash).toList();
        CompletableFuture<Boolean> second;
        try {
            second = writeBack.writeFirstStored(missing, again, true).thenApplyAsync(resent -> pinAgain(p, hashes,
                    again, resent, a.taken()), pins);
        } catch (RuntimeException e) {
            offloadPins.release(a.taken());
            throw e;
        }
        return second;
    }

    /** The second and last Pin of an offload, of the blocks sent again; releases the first Pin's pins on failure. */
    private boolean pinAgain(Pinned p, List<BlockHash> hashes, List<BlockHash> again, boolean stored,
                             OffloadPins.Taken first) {
        OffloadPins.Answer b;
        try {
            if (!stored) {
                offloadPins.release(first);
                return false;
            }
            b = offloadPins.pin(again);
        } catch (RuntimeException e) {
            offloadPins.release(first);
            throw e;
        }
        for (int i = 0; i < again.size(); i++) {
            if (!b.pinned().get(i)) {
                writeBack.notStored(again.get(i));
            }
        }
        if (b.pinned().contains(false)) {
            offloadPins.release(first);
            offloadPins.release(b.taken());
            return false;
        }
        return keep(p, hashes, List.of(first, b.taken()));
    }

    /** The offload's Pins pinned every block: they are the sequence's, unless it was released meanwhile. */
    private boolean keep(Pinned p, List<BlockHash> hashes, List<OffloadPins.Taken> taken) {
        boolean keep;
        synchronized (p) {
            keep = !p.closed;
            if (keep) {
                p.chain.addAll(hashes);
                p.taken.addAll(taken);
            }
        }
        if (!keep) {
            taken.forEach(offloadPins::release);
        }
        return keep;
    }

    @Override
    public void released(long seqId) {
        Pinned p = pinned.remove(seqId);
        if (p == null) {
            return;
        }
        List<OffloadPins.Taken> taken;
        synchronized (p) {
            p.closed = true;
            taken = List.copyOf(p.taken);
        }
        taken.forEach(offloadPins::release);
    }

    // ---- SequenceCaps (any thread) ----

    /**
     * A sequence whose offload failed stays local with its remote prefix as it was: it can reach the pool's
     * positions past that prefix, no more (the cache's own bound is lifted for every sequence by the offload).
     */
    @Override
    public int positions(long seqId) {
        Pinned p = pinned.get(seqId);
        if (p == null || !p.failed) {
            return Integer.MAX_VALUE;
        }
        synchronized (p) {
            return (int) Math.min(Integer.MAX_VALUE, ((long) p.remote + poolBlocks) * blockTokens);
        }
    }

    @Override
    public void onLowered(LongConsumer listener) {
        lowered = listener;
    }

    // ---- RemoteAttention (engine thread) ----

    @Override
    public void start(RemoteAttentionBatch batch) {
        cancelCalls();
        int rowFloats = batch.heads() * batch.headDim();
        for (int i = 0; i < batch.count(); ) {
            long seq = batch.seqId(i);
            int r = batch.prefix(i);
            int n = 1;
            while (i + n < batch.count() && n < MAX_ROWS && batch.seqId(i + n) == seq) {
                n++;
            }
            List<ByteString> blocks = remoteChain(seq, r);
            ByteBuffer q = ByteBuffer.allocate(n * rowFloats * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            q.asFloatBuffer().put(batch.queries(), i * rowFloats, n * rowFloats);
            long[] positions = new long[n];
            for (int j = 0; j < n; j++) {
                positions[j] = batch.position(i + j);
            }
            AttendRequest req = client.attendRequest(batch.layer(), n, batch.heads(),
                    UnsafeByteOperations.unsafeWrap(q.array()), positions, blocks, batch.scale());
            calls.add(new Call(i, n, seq, req.getSerializedSize(), client.attend(req, attendTimeout)));
            attendCalls.incrementAndGet();
            i += n;
        }
    }

    /** The hashes of the sequence's first {@code prefix / blockTokens} blocks, as pinned for it. */
    private List<ByteString> remoteChain(long seq, int prefix) {
        Pinned p = pinned.get(seq);
        int n = prefix / blockTokens;
        if (p == null) {
            throw new IllegalStateException("sequence " + seq + " has a remote prefix of " + n
                    + " blocks but none is pinned for it");
        }
        synchronized (p) {
            if (p.chain.size() < n) {
                throw new IllegalStateException("sequence " + seq + " has a remote prefix of " + n
                        + " blocks but " + p.chain.size() + " are pinned for it");
            }
            List<ByteString> out = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                out.add(ByteString.copyFrom(p.chain.get(i).bytes()));
            }
            return out;
        }
    }

    @Override
    public void await(RemoteAttentionBatch batch) {
        long deadline = System.nanoTime() + attendTimeout.toNanos();
        try {
            for (Call c : calls) {
                AttendResponse a = answer(c, deadline);
                copy(batch, c, a);
                attendWireBytes.addAndGet(c.requestBytes() + a.getSerializedSize());
            }
        } catch (RuntimeException e) {
            attendFailures.incrementAndGet();
            throw e;
        } finally {
            cancelCalls();
        }
    }

    private AttendResponse answer(Call c, long deadline) {
        try {
            return c.answer().get(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            Status s = Status.fromThrowable(e.getCause());
            throw new IllegalStateException("Attend of sequence " + c.seqId() + " at the kvcache-service "
                    + client.endpoint() + " failed: " + s.getCode()
                    + (s.getDescription() == null ? "" : " " + s.getDescription()));
        } catch (TimeoutException e) {
            throw new IllegalStateException("Attend of sequence " + c.seqId() + " at the kvcache-service "
                    + client.endpoint() + " did not answer within " + attendTimeout.toMillis() + " ms");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for Attend");
        }
    }

    /** Checks the answer's shapes and copies it into the batch's rows. */
    private static void copy(RemoteAttentionBatch batch, Call c, AttendResponse a) {
        int heads = batch.heads();
        int d = batch.headDim();
        Tensor out = a.getOutputs();
        Tensor lse = a.getLse();
        if (out.getDtype() != DType.DTYPE_F32 || out.getData().size() != c.rows() * heads * d * Float.BYTES
                || lse.getDtype() != DType.DTYPE_F32 || lse.getData().size() != c.rows() * heads * Float.BYTES) {
            throw new IllegalStateException("Attend of sequence " + c.seqId() + " answered " + out.getShapeList()
                    + " outputs and " + lse.getShapeList() + " lse for " + c.rows() + " rows of " + heads + " heads");
        }
        FloatBuffer o = out.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        o.get(batch.output(), c.from() * heads * d, c.rows() * heads * d);
        FloatBuffer l = lse.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        l.get(batch.lse(), c.from() * heads, c.rows() * heads);
    }

    private void cancelCalls() {
        for (Call c : calls) {
            c.answer().cancel(true);
        }
        calls.clear();
    }

    // ---- counters (any thread) ----

    /** Blocks stored and pinned by offloads that succeeded. */
    public long offloadedBlocks() {
        return offloadedBlocks.get();
    }

    /** Offloads that failed (the sequence stayed local). */
    public long offloadFailures() {
        return offloadFailures.get();
    }

    /** Attend calls sent. */
    public long attendCalls() {
        return attendCalls.get();
    }

    /** Layers whose Attend failed or timed out (each failed a step). */
    public long attendFailures() {
        return attendFailures.get();
    }

    /** Serialized bytes of answered Attend calls, request plus response (protobuf messages, no HTTP/2 framing). */
    public long attendWireBytes() {
        return attendWireBytes.get();
    }

    /** Sequences with blocks pinned in the service now (an offload that failed at once pinned nothing). */
    public int pinnedSequences() {
        int n = 0;
        for (Pinned p : pinned.values()) {
            synchronized (p) {
                n += p.chain.isEmpty() ? 0 : 1;
            }
        }
        return n;
    }

    /** Releases every pin still held and stops the pin thread (shutdown). */
    @Override
    public void close() {
        for (Long seq : List.copyOf(pinned.keySet())) {
            released(seq);
        }
        pins.shutdown();
        try {
            pins.awaitTermination(offloadTimeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
