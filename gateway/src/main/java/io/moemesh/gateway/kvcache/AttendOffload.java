package io.moemesh.gateway.kvcache;

import com.google.protobuf.ByteString;
import io.moemesh.gateway.serving.SequenceCaps;
import io.moemesh.model.engine.RemoteAttention;
import io.moemesh.model.engine.RemoteAttentionBatch;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.BlockOffload;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
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
 * <p><b>Offload</b> (a gateway thread, never the engine's): the cache copies only the blocks the write-back does not
 * know as stored or queued ({@link #needsCopy}), the others go by hash; the copies go through the {@link WriteBack}
 * queue ahead of everything else ({@link WriteBack#writeFirst}), marked {@code pin_next} so the service's admission
 * policy does not decline them, then one {@code Pin} for them all. The copies' room is {@link CopyRoom}'s: an
 * offload holds it until it settles (stored and pinned, failed, or past {@code offloadTimeout}, when its copies still
 * queued are withdrawn and a Pin that answers later, queued behind others on the pin thread, sends none again, so a
 * black-holed service holds the room no longer than that; a Put already under way keeps its blocks, 16 at most,
 * until it ends). Once {@value #DOWN_AFTER_FAILURES} offloads in a row went unanswered (the service looks down,
 * {@link OffloadHealth}) a sequence short of room runs on with its blocks local (no failure; a prompt longer than
 * the pool ends with 503 where it fills the pool, or is refused so at once, see {@link #admitPrompt}). Blocks that Pin
 * finds not stored (the write-back remembered them stored, but the service evicted or lost them since) are forgotten
 * by the write-back, sent again and pinned by a second Pin, once; when one of them was not copied, the Pin is released
 * and the offload says {@link Outcome#AGAIN} instead ({@link #offloadRetries}): the cache offers the run again at
 * once, copying every block of it (a second AGAIN in a row fails the sequence's offload). Any block
 * not stored (no space, Put failed) or still not pinned, a service that is down, or more than {@code offloadTimeout}:
 * the offload fails and the sequence stays local for good (no failure, no more retries against a failing service;
 * it ends with finish reason length where the local pool ends, see {@link #positions}); what it pinned is unpinned
 * at once, or, when a Pin answered only after the timeout, with the sequence's other pins when it ends, and its
 * blocks still queued for writing are withdrawn ({@link WriteBack#withdraw}).
 *
 * <p>Each Pin carries a fresh random pin id and every release is an Unpin of that id, which releases exactly what
 * that Pin pinned, also after a Pin that failed on this side ({@link OffloadPins}: why, and how a service that
 * predates pin ids is released, by the hashes its answer said pinned).
 *
 * <p><b>Attend</b>: in {@link #start}, one asynchronous call per sequence of the batch (a sequence's rows are
 * consecutive; more than 256 rows, a prefill chunk, go in several), each with a deadline of {@code attendTimeout};
 * {@link #await} waits for all of them ({@link AttendCalls}). A call that fails or misses its deadline fails its
 * sequence ({@link io.moemesh.model.engine.RemoteAttentionException} naming it, mapped to HTTP 503 / gRPC
 * UNAVAILABLE; the scheduler steps the others again without it): the positions it covered are no longer held
 * locally, and computing the step without them would produce a wrong token. The request fails; its blocks stay in
 * the service (and, until evicted, in the local cache as cached blocks), so a retry finds its prefix again.
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
    /** Engine thread only: the Attend calls of the current layer. */
    private final AttendCalls attends;
    /** The room for the offloads' block copies, and the sequences waiting for it. */
    private final CopyRoom room;
    /** Offloads the service did not answer, in a row: whether it looks down. */
    private final OffloadHealth health;
    /** Failures in a row after which no sequence waits for copy room. */
    static final int DOWN_AFTER_FAILURES = OffloadHealth.DOWN_AFTER_FAILURES;
    private final AtomicLong offloadedBlocks = new AtomicLong();
    private final AtomicLong offloadFailures = new AtomicLong();
    private final AtomicLong offloadRetries = new AtomicLong();

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
        this.health = new OffloadHealth(offloadTimeout, System::nanoTime);
        this.poolBlocks = poolBlocks;
        this.blockTokens = client.payload().blockTokens();
        this.room = new CopyRoom(writeBack.priorityBudget(), offloadTimeout, health, () -> wakeUp.run());
        this.attends = new AttendCalls(client, attendTimeout);
        this.pins = Executors.newSingleThreadExecutor(Thread.ofPlatform().name("moemesh-kv-attend-pins").daemon()
                .factory());
        this.offloadPins = new OffloadPins(client, pins, offloadTimeout);
    }

    // ---- BlockOffload (engine thread, never blocks) ----

    @Override
    public int remoteBlocks(int length) {
        return length < thresholdTokens ? 0 : Math.max(0, length / blockTokens - localBlocks);
    }

    /** The write-back neither stored nor queued it (as far as it remembers): the offload sends a copy. */
    @Override
    public boolean needsCopy(BlockHash hash) {
        return writeBack.lacks(hash);
    }

    @Override
    public int copyRoom() {
        return room.room();
    }

    /** See {@link CopyRoom#await}. */
    @Override
    public boolean awaitRoom(long seqId) {
        return room.await(seqId);
    }

    @Override
    public CompletableFuture<Outcome> offload(long seqId, List<BlockHash> hashes, List<BlockContents> copies) {
        Pinned p = pinned.computeIfAbsent(seqId, k -> new Pinned());
        int copied = copies.size();
        room.hold(seqId, copied);
        // The copies, for a second write of blocks the Pin finds gone; let go of when the offload settles, so a Pin
        // that runs or answers after the timeout holds none.
        AtomicReference<List<BlockContents>> held = new AtomicReference<>(copies);
        CompletableFuture<Outcome> work;
        try {
            // pin_next: pinned right after, so the service's admission policy may not decline them.
            work = writeBack.writeFirstStored(copies, hashes, true)
                    .thenComposeAsync(stored -> pin(p, held, hashes, stored), pins);
        } catch (RuntimeException e) {
            work = CompletableFuture.failedFuture(e);
        }
        CompletableFuture<Outcome> settled = work.copy().orTimeout(offloadTimeout.toNanos(), TimeUnit.NANOSECONDS)
                .handle((o, e) -> {
                    held.set(null);
                    Outcome outcome = settle(seqId, p, hashes, o, e); // a failure withdraws its queued copies
                    // Their room is another offload's now, a timeout's too: the pin thread may be held for long by
                    // calls to a service that does not answer, and a sequence may be waiting for that room.
                    room.give(copied);
                    return outcome;
                });
        // The loop may be waiting for this offload (a prompt longer than the pool, StepScheduler's next chunk) or for
        // its room: wake it rather than let it sleep out its idle poll.
        settled.whenComplete((o, e) -> wakeUp.run());
        return settled;
    }

    /**
     * Counts an offload's outcome; a failed one caps its sequence by the local pool from now on. Only an offload the
     * service did not answer (transport error, deadline) counts toward it looking down; a sequence released
     * meanwhile counts for nothing else, its outcome being about the release, not the service.
     */
    private Outcome settle(long seqId, Pinned p, List<BlockHash> hashes, Outcome o, Throwable e) {
        boolean released;
        synchronized (p) {
            released = p.closed;
        }
        released |= pinned.get(seqId) != p;
        if (e == null && o == Outcome.AGAIN) {
            offloadRetries.incrementAndGet();
            log.debug("offload of sequence {}: a KV block sent by its hash alone was gone from {}; offered again",
                    seqId, client.endpoint());
            return o;
        }
        if (e != null || o != Outcome.PINNED) {
            offloadFailures.incrementAndGet();
            if (e != null && OffloadHealth.unanswered(e)) {
                health.failed();
            }
            log.debug("offload of {} KV blocks of sequence {} to {} failed (it stays local): {}", hashes.size(), seqId,
                    client.endpoint(), e == null ? "not stored or not pinned" : e.toString());
            // Its copies still queued (past the timeout) are of no use to it now: freed, not left to pile up.
            writeBack.withdraw(hashes);
            // Still the sequence's own pins (not a released one's): from now on it is capped by the local pool.
            if (pinned.get(seqId) == p) {
                p.failed = true;
                lowered.accept(seqId);
            }
            return Outcome.FAILED;
        }
        if (!released) {
            health.pinned();
        }
        synchronized (p) {
            p.remote += hashes.size();
        }
        offloadedBlocks.addAndGet(hashes.size());
        return o;
    }

    /** Called, on any thread, whenever an offload settles (stored and pinned, or failed). Set once, before serving. */
    public void setWakeUp(Runnable wakeUp) {
        this.wakeUp = wakeUp;
    }

    /**
     * On the pin thread: every block stored ({@code stored}: acknowledged to this offload's write, {@link
     * WriteBack#writeFirstStored}, not looked up in the write-back's bounded memory, which an offload larger than
     * {@code remembered-blocks} would overflow; a block sent by hash alone is the Pin's to find), then pinned for the
     * sequence. Blocks the Pin finds not stored, though the write-back remembered them stored (the service evicted
     * them since, lost them in a restart, or they were never re-sent because of that memory), are forgotten there
     * ({@link StoredBlocks#notStored}), sent again and pinned by a second Pin, once; the first Pin's pins are held
     * meanwhile. When one of them was sent by hash alone there is no copy to send: {@link Outcome#AGAIN}. Nothing is
     * pinned once the offload settled ({@code held} empty: it timed out while this waited for the pin thread).
     */
    private CompletableFuture<Outcome> pin(Pinned p, AtomicReference<List<BlockContents>> held, List<BlockHash> hashes,
                                           boolean stored) {
        if (!stored || held.get() == null) {
            return CompletableFuture.completedFuture(Outcome.FAILED);
        }
        OffloadPins.Answer a = offloadPins.pin(hashes); // a failure was released (by its id) before it is thrown
        List<BlockContents> copies = held.get(); // none once it settled during the Pin: nothing is sent again
        Map<BlockHash, BlockContents> copyOf = new HashMap<>();
        if (copies != null) {
            copies.forEach(c -> copyOf.put(c.hash(), c));
        }
        List<BlockContents> missing = new ArrayList<>();
        boolean uncopied = false;
        for (int i = 0; i < hashes.size(); i++) {
            if (!a.pinned().get(i)) {
                writeBack.memory().notStored(hashes.get(i));
                BlockContents c = copyOf.get(hashes.get(i));
                if (c == null) {
                    uncopied = true;
                } else {
                    missing.add(c);
                }
            }
        }
        if (missing.isEmpty() && !uncopied) {
            return CompletableFuture.completedFuture(keep(p, hashes, List.of(a.taken())));
        }
        boolean closed;
        synchronized (p) {
            closed = p.closed;
        }
        if (closed || uncopied) {
            // Released meanwhile; or a block went by hash alone: the write-back forgot it above, so the cache's next
            // try copies it.
            offloadPins.release(a.taken());
            return CompletableFuture.completedFuture(closed ? Outcome.FAILED : Outcome.AGAIN);
        }
        log.debug("{} of {} KV blocks of an offload were gone from {}: sent again", missing.size(), hashes.size(),
                client.endpoint());
        List<BlockHash> again = missing.stream().map(BlockContents::hash).toList();
        CompletableFuture<Outcome> second;
        try {
            second = writeBack.writeFirstStored(missing, again, true).handleAsync((resent, e) -> {
                if (e != null) { // a Put got no answer: the offload fails with it, the first Pin's pins let go of
                    offloadPins.release(a.taken());
                    throw e instanceof CompletionException c ? c : new CompletionException(e);
                }
                return pinAgain(p, hashes, again, resent, a.taken());
            }, pins);
        } catch (RuntimeException e) {
            offloadPins.release(a.taken());
            throw e;
        }
        return second;
    }

    /** The second and last Pin of an offload, of the blocks sent again; releases the first Pin's pins on failure. */
    private Outcome pinAgain(Pinned p, List<BlockHash> hashes, List<BlockHash> again, boolean stored,
                             OffloadPins.Taken first) {
        OffloadPins.Answer b;
        try {
            if (!stored) {
                offloadPins.release(first);
                return Outcome.FAILED;
            }
            b = offloadPins.pin(again);
        } catch (RuntimeException e) {
            offloadPins.release(first);
            throw e;
        }
        for (int i = 0; i < again.size(); i++) {
            if (!b.pinned().get(i)) {
                writeBack.memory().notStored(again.get(i));
            }
        }
        if (b.pinned().contains(false)) {
            offloadPins.release(first);
            offloadPins.release(b.taken());
            return Outcome.FAILED;
        }
        return keep(p, hashes, List.of(first, b.taken()));
    }

    /** The offload's Pins pinned every block: they are the sequence's, unless it was released meanwhile. */
    private Outcome keep(Pinned p, List<BlockHash> hashes, List<OffloadPins.Taken> taken) {
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
        return keep ? Outcome.PINNED : Outcome.FAILED;
    }

    @Override
    public void released(long seqId) {
        health.released(seqId); // a probe released before its offload's outcome frees its claim
        room.forget(seqId);
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

    /**
     * While the service looks down and prompts longer than the pool are refused ({@link OffloadHealth}: its window,
     * or a probe under way), no block of a new prompt can move out: the pool's positions are all it can hold.
     */
    @Override
    public int promptPositions() {
        return health.refusing() ? poolPositions() : Integer.MAX_VALUE;
    }

    /** As {@link #promptPositions}; a prompt longer than the pool let through while the service looks down is the probe. */
    @Override
    public Optional<Admitted> admitPrompt(int promptTokens) {
        return promptTokens <= poolPositions() ? Optional.of(Admitted.PLAIN) : health.admitLongPrompt();
    }

    private int poolPositions() {
        return (int) Math.min(Integer.MAX_VALUE, (long) poolBlocks * blockTokens);
    }

    /** Its health (a test sets its clock). */
    OffloadHealth health() {
        return health;
    }

    @Override
    public int retryAfterSeconds() {
        return health.retryAfterSeconds();
    }

    @Override
    public void onLowered(LongConsumer listener) {
        lowered = listener;
    }

    // ---- RemoteAttention (engine thread) ----

    @Override
    public void start(RemoteAttentionBatch batch) {
        attends.start(batch, this::remoteChain);
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
        attends.await(batch);
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

    /**
     * Offloads that said {@link Outcome#AGAIN}: a block sent by its hash alone was gone from the service (the cache
     * offered the run again with a copy of every block).
     */
    public long offloadRetries() {
        return offloadRetries.get();
    }

    /** Sequences whose wait for copy room is remembered (until an offload of them starts or they are released). */
    int roomWaiters() {
        return room.waiters();
    }

    /** Attend calls sent. */
    public long attendCalls() {
        return attends.sent();
    }

    /** Layers whose Attend failed or timed out for some sequence (each failed those sequences' step). */
    public long attendFailures() {
        return attends.failures();
    }

    /** Serialized bytes of answered Attend calls, request plus response (protobuf messages, no HTTP/2 framing). */
    public long attendWireBytes() {
        return attends.wireBytes();
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
