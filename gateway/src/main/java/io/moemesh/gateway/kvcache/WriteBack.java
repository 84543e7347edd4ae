package io.moemesh.gateway.kvcache;

import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.BlockSink;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Asynchronous write-back of the gateway's KV blocks to the kvcache-service: the {@link BlockSink} of the
 * gateway's prefix cache. The engine thread only copies a block and queues it ({@link #accept}, never blocking: with
 * {@code queueBlocks} ordinary blocks queued, {@link #wants} says no, so a block is not even copied, and counts it
 * dropped); one writer thread encodes queued blocks (the layout transpose, {@link KvPayload}) and stores them in
 * {@code Put} streams of up to {@link #BATCH_BLOCKS} blocks.
 *
 * <p>It remembers ({@link #memory}), bounded ({@code remembered} hashes, least recently touched forgotten first),
 * which hashes are queued or stored (acknowledged {@code STORED} or {@code ALREADY_PRESENT}, or {@linkplain
 * StoredBlocks#fetched fetched}), so a block is not copied or sent twice needlessly ({@link #wants}), and for blocks
 * it stored ({@code STORED}) the CRC32C of the payload it sent and of that payload's int8 round trip (the service's
 * optional int8 SSD storage, {@code moemesh.kvcache.int8}, gives those floats back after a demotion), so a block
 * fetched back can be checked end to end ({@link StoredBlocks#heldOtherBytes}). An {@code ALREADY_PRESENT} block
 * keeps the copy that was there, perhaps another gateway's bitwise-different floats: no checksum. A failed, declined
 * or dropped block is forgotten (it may be offered again), and so is a stored one that the service was seen not to
 * hold ({@link StoredBlocks#notStored}: evicted or lost with its DRAM), so it is sent again when next offered. A
 * block fetched back with other bytes is not evidence of that (the service still holds a copy, and sending ours
 * again would only be answered {@code ALREADY_PRESENT}): its checksum is kept, so it is refused on every fetch.
 *
 * <p><b>Priority writes</b>: swap-outs and Attend offloads jump the queue ({@link #writeFirst}) and can wait for their
 * blocks to be settled; an offload's blocks are sent with {@code pin_next} ({@link #writeFirst(List, List, boolean)}),
 * a swap-out's with {@code swap_out}: the service's admission policy declines neither. They never push a queued block
 * out, and once queued they are not dropped: {@code queueBlocks} bounds only the ordinary write-backs (finished and
 * evicted blocks), and a full queue drops the newest, the one offered. Priority copies held (queued, or in the writer's
 * Put, until settled) count against a fixed budget, {@code priorityBlocks} (the gateway passes {@code
 * write-back-queue-blocks}), never the KV pool's size: they are heap beside the pool, which a slow service's swap-outs
 * would fill a second time. A swap-out copies only its leading blocks that fit ({@link #swapOutFilter}; the rest,
 * counted dropped, is recomputed on resume: a restore uses the leading run). An offload is taken whole (a part could
 * not be pinned): it bounds its own copies ({@link AttendOffload}: blocks this write-back {@link #lacks}, at most
 * {@link #priorityBudget} held), so priority copies stay within twice the budget. What an offload that gave up left
 * queued is withdrawn ({@link #withdraw}).
 */
public final class WriteBack implements BlockSink, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(WriteBack.class);
    /** Blocks per Put stream at most. */
    static final int BATCH_BLOCKS = 16;
    private final KvCacheClient client;
    private final Duration putTimeout;
    private final Duration drain;
    private final int queueBlocks;
    private final int priorityBlocks;
    /** Priority entries at the front, ordinary ones behind; unbounded itself: the two counts below bound it. */
    private final LinkedBlockingDeque<QueuedBlock> queue = new LinkedBlockingDeque<>();
    /** Ordinary entries in {@link #queue} (under {@code known}'s lock). */
    private int ordinaryQueued;
    /** Priority entries queued or in the writer's Put, not yet settled: its copies are still held (under the lock). */
    private int priorityHeld;
    /** What is remembered of hashes queued or stored; also the one lock of this class's mutable state. */
    private final StoredBlocks known;
    /** Queued hashes → their entry (to move one to the front, and to wait for it). */
    private final Map<BlockHash, QueuedBlock> queued = new HashMap<>();
    private final Thread writer;
    private volatile boolean open = true;
    private final AtomicLong written = new AtomicLong();
    private final AtomicLong writtenBytes = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicLong declined = new AtomicLong();


    /**
     * @param queueBlocks    ordinary blocks (finished, evicted) waiting to be written at most (≥ 1); beyond it new
     *                       ones are dropped
     * @param priorityBlocks the budget of priority copies held (queued or being written, ≥ 1): swap-outs copy no
     *                       more than its room, offloads' copies count against it but are taken whole (see the class
     *                       comment); a fixed number, never the KV pool's size
     * @param putTimeout     deadline of one Put stream
     * @param remembered     hashes remembered as stored or queued at most (≥ 1)
     * @param drain          how long {@link #close()} still writes what is queued
     */
    public WriteBack(KvCacheClient client, int queueBlocks, int priorityBlocks, Duration putTimeout, int remembered,
                     Duration drain) {
        if (queueBlocks < 1 || priorityBlocks < 1 || remembered < 1) {
            throw new IllegalArgumentException("a write-back needs write-back-queue-blocks >= 1, a priority budget "
                    + ">= 1 and remembered-blocks >= 1, got " + queueBlocks + ", " + priorityBlocks + " and "
                    + remembered);
        }
        this.drain = drain;
        this.client = client;
        this.putTimeout = putTimeout;
        this.queueBlocks = queueBlocks;
        this.priorityBlocks = priorityBlocks;
        this.known = new StoredBlocks(remembered);
        this.writer = Thread.ofPlatform().name("moemesh-kv-writeback").daemon().unstarted(this::run);
        writer.start();
    }

    /**
     * Whether the cache should copy and hand over the block: the service is not known to hold it, it is not queued,
     * and the ordinary queue has room (full: counted as dropped here, before any copy is made).
     */
    @Override
    public boolean wants(BlockHash hash) {
        synchronized (known) {
            if (!lacks(hash)) {
                return false;
            }
            if (ordinaryQueued >= queueBlocks) {
                dropped.incrementAndGet();
                return false;
            }
            return true;
        }
    }

    /**
     * Whether a swap-out should copy the block: the service is not known to hold it and it is not queued (the
     * ordinary queue's room does not matter: see {@link #priorityRoom}).
     */
    public boolean lacks(BlockHash hash) {
        synchronized (known) {
            return open && !known.knows(hash);
        }
    }

    @Override
    public void accept(BlockContents block) {
        synchronized (known) { // held across the check and the admission: nothing queues in between
            if (wants(block.hash())) {
                admit(new QueuedBlock(block, false, false), false);
            }
        }
    }

    /**
     * Blocks a swap-out may still copy and queue: {@code priorityBlocks} less the priority copies held now (queued or
     * being written, offloads' included). Only grows until the caller's next {@link #writeFirst} (the writer only
     * settles entries).
     */
    public int priorityRoom() {
        synchronized (known) {
            return Math.max(0, priorityBlocks - priorityHeld);
        }
    }

    /** The budget of priority copies held ({@code priorityBlocks}); the offloads' own is as large. */
    public int priorityBudget() {
        return priorityBlocks;
    }

    /** Priority copies held now: queued, or in the writer's Put and not yet settled (tests). */
    int priorityCopies() {
        synchronized (known) {
            return priorityHeld;
        }
    }

    /**
     * For one swap-out's copies (engine thread, right before its {@link #writeFirst}): says yes to the blocks the
     * service lacks ({@link #lacks}) while {@link #priorityRoom} lasts, and no to the rest, counting those dropped,
     * so no block is copied that would not be queued.
     */
    public Predicate<BlockHash> swapOutFilter() {
        int[] room = {priorityRoom()};
        return h -> {
            if (!lacks(h)) {
                return false;
            }
            if (room[0] > 0) {
                room[0]--;
                return true;
            }
            dropped.incrementAndGet();
            return false;
        };
    }

    /**
     * A swap-out: queues {@code blocks} (block 0 first; their leading {@link #priorityRoom} ones, the caller having
     * copied no more: see {@link #swapOutFilter}) ahead of everything else (its blocks are needed back soon) and moves {@code alsoNeeded} that
     * are queued already to the front too, every one sent with {@code swap_out}: the service's admission policy may not
     * decline it (the conversation policy declines an announced chain's last block once it learned those are rarely
     * reused; the resume's restore would stop there). The future completes when each of them is settled (stored, or
     * failed / not stored for room: then the restore finds fewer blocks and recomputes the rest).
     */
    public CompletableFuture<Void> writeFirst(List<BlockContents> blocks, List<BlockHash> alsoNeeded) {
        return writeFirst(blocks, alsoNeeded, false);
    }

    /**
     * As {@link #writeFirst(List, List)}; with {@code pinNext} (the Attend offload: it pins the blocks once they are
     * settled) every one of them is taken, whatever the room (see the class comment), and every one, {@code
     * alsoNeeded} ones already queued included, is sent with {@code pin_next} instead of {@code swap_out}, so the
     * service's admission policy does not decline it (a declined block cannot be pinned, and the sequence would stay
     * local).
     */
    public CompletableFuture<Void> writeFirst(List<BlockContents> blocks, List<BlockHash> alsoNeeded,
                                              boolean pinNext) {
        return writeFirstStored(blocks, alsoNeeded, pinNext).thenApply(all -> null);
    }

    /**
     * As {@link #writeFirst(List, List, boolean)}; the future says whether every block is stored: each one it queued
     * or waited for was acknowledged, the others were remembered stored when it was called. Not {@link StoredBlocks#isStored} once
     * settled: that memory is bounded ({@code remembered}), and an offload of more blocks than it holds would find
     * its first ones forgotten and fail every time. With {@code pinNext} (an offload) it fails instead, with the Put's
     * error, when the service did not answer a Put of one of them (transport error, deadline): the offload counts
     * that once toward the service looking down ({@link OffloadHealth}), however many Puts its blocks took.
     */
    public CompletableFuture<Boolean> writeFirstStored(List<BlockContents> blocks, List<BlockHash> alsoNeeded,
                                                       boolean pinNext) {
        List<CompletableFuture<Boolean>> waits = new ArrayList<>();
        // An offload's: the error holders of the entries it waits for, never the entries themselves. The callback
        // below lives until the last of them is settled, and entries would keep the settled ones' key/value arrays
        // reachable after priorityHeld stopped counting them (past the budget); a swap-out needs none.
        List<AtomicReference<RuntimeException>> unanswered = pinNext ? new ArrayList<>() : null;
        boolean[] all = {true};
        synchronized (known) {
            for (BlockHash h : alsoNeeded) {
                QueuedBlock e = queued.get(h);
                if (e != null) {
                    // Still queued: to the front (its count unchanged). Already taken by the writer: just wait for
                    // its Put (a Put sent without pin_next and declined is sent again with it: see write).
                    if (pinNext) {
                        e.pinNext = true;
                    } else {
                        e.swapOut = true;
                    }
                    if (queue.remove(e)) {
                        queue.offerFirst(e);
                    }
                    e.waiters++;
                    waitFor(e, waits, unanswered);
                }
            }
            List<QueuedBlock> fresh = new ArrayList<>();
            // An offload whole (its copies bounded by the offload's own budget: class comment).
            int room = pinNext ? Integer.MAX_VALUE : Math.max(0, priorityBlocks - priorityHeld);
            for (BlockContents b : blocks) {
                if (!open || known.knows(b.hash())) {
                    // Known: queued (its Put is waited for) or stored; closed: not stored.
                    QueuedBlock q = queued.get(b.hash());
                    if (q != null) {
                        waitFor(q, waits, unanswered);
                    } else {
                        all[0] &= open && known.isStored(b.hash());
                    }
                    continue;
                }
                if (fresh.size() >= room) {
                    // Past the swap-outs' bound (a caller that did not ask priorityRoom): the leading run is kept.
                    dropped.incrementAndGet();
                    all[0] = false;
                    continue;
                }
                fresh.add(new QueuedBlock(b, true, pinNext));
            }
            // Block 0 ends at the very front.
            for (QueuedBlock e : fresh.reversed()) {
                admit(e, true);
                e.waiters++;
                waitFor(e, waits, unanswered);
            }
        }
        return CompletableFuture.allOf(waits.toArray(CompletableFuture[]::new)).thenApply(x -> {
            if (unanswered != null) {
                // An offload's "not stored" is also a full service's answer: one its Puts got no answer to fails it
                // with that error instead, once for the whole offload (its blocks may have taken several Puts).
                for (AtomicReference<RuntimeException> u : unanswered) {
                    if (u.get() != null) {
                        throw new CompletionException(u.get());
                    }
                }
            }
            return all[0] && waits.stream().allMatch(CompletableFuture::join);
        });
    }

    /** A writeFirst waits for {@code e}: its future, and (an offload, {@code unanswered} not null) its error holder. */
    private static void waitFor(QueuedBlock e, List<CompletableFuture<Boolean>> waits,
                                List<AtomicReference<RuntimeException>> unanswered) {
        waits.add(e.done);
        if (unanswered != null) {
            unanswered.add(e.unanswered);
        }
    }

    /**
     * An offload gave up (failed or timed out): its blocks still queued that no other {@link #writeFirst} waits for
     * are taken out and forgotten (their copies freed: the offloads' copies stay within the blocks their sequences
     * hold). Blocks already taken by the writer are written as usual.
     */
    public void withdraw(List<BlockHash> hashes) {
        synchronized (known) {
            for (BlockHash h : hashes) {
                QueuedBlock e = queued.get(h);
                if (e == null || !e.priority || e.waiters == 0 || --e.waiters > 0) {
                    continue;
                }
                if (queue.remove(e)) {
                    taken(e);
                    forget(e, "withdrawn: its offload gave up");
                }
            }
        }
    }

    /** Queues {@code e} at the front or the back (caller holds {@code known}'s lock). */
    private void admit(QueuedBlock e, boolean first) {
        if (first) {
            queue.offerFirst(e);
        } else {
            queue.offerLast(e);
        }
        if (e.priority) {
            priorityHeld++;
        } else {
            ordinaryQueued++;
        }
        known.queued(e.block.hash());
        queued.put(e.block.hash(), e);
    }

    /** {@code e} left the queue (caller holds {@code known}'s lock): a priority copy stays held until settled. */
    private void taken(QueuedBlock e) {
        if (!e.priority) {
            ordinaryQueued--;
        }
    }

    /** {@code e}, taken by the writer, is queued again (caller holds {@code known}'s lock). */
    private void requeued(QueuedBlock e) {
        queue.offerFirst(e);
        if (!e.priority) {
            ordinaryQueued++;
        }
    }

    /** {@code e} is stored or forgotten: its copy is no longer held (caller holds {@code known}'s lock). */
    private void settled(QueuedBlock e) {
        if (e.priority) {
            priorityHeld--;
        }
    }

    /** Forgets a queued entry that is not going to be stored (caller holds {@code known}'s lock). */
    private void forget(QueuedBlock e, String why) {
        BlockHash h = e.block.hash();
        queued.remove(h);
        known.forgetQueued(h);
        settled(e);
        e.done.complete(false);
        log.debug("KV block {} not written back: {}", h, why);
    }

    /**
     * What it remembers of the hashes it queued or stored, with their checksums (thread-safe; its lock is this
     * write-back's): the fetches and the offload read it and tell it what they saw of the service.
     */
    StoredBlocks memory() {
        return known;
    }

    private void run() {
        List<QueuedBlock> batch = new ArrayList<>();
        while (open || !queue.isEmpty()) {
            try {
                QueuedBlock first = queue.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.clear();
                batch.add(first);
                queue.drainTo(batch, BATCH_BLOCKS - 1);
                synchronized (known) {
                    batch.forEach(this::taken);
                }
                write(batch);
            } catch (InterruptedException e) {
                return;
            } catch (RuntimeException e) {
                log.warn("KV write-back failed", e);
                // Its blocks are not stored: forgotten (their waiters answered, priority copies no longer held).
                synchronized (known) {
                    for (QueuedBlock en : batch) {
                        if (!en.done.isDone() && !queue.contains(en)) {
                            forget(en, "write-back failed");
                        }
                    }
                }
            }
        }
    }

    private void write(List<QueuedBlock> batch) {
        List<BlockContents> blocks = new ArrayList<>(batch.size());
        List<byte[]> payloads = new ArrayList<>(batch.size());
        boolean[] pinNext = new boolean[batch.size()];
        boolean[] swapOut = new boolean[batch.size()];
        for (int i = 0; i < batch.size(); i++) {
            QueuedBlock e = batch.get(i);
            blocks.add(e.block);
            payloads.add(client.payload().encode(e.block.keys(), e.block.values()));
            pinNext[i] = e.pinNext;
            swapOut[i] = e.swapOut;
        }
        List<PutOutcome> outcomes;
        try {
            outcomes = client.put(blocks, payloads, pinNext, swapOut, putTimeout);
        } catch (RuntimeException e) {
            failed.addAndGet(batch.size());
            boolean unanswered = OffloadHealth.unanswered(e);
            synchronized (known) {
                for (QueuedBlock en : batch) {
                    if (unanswered) {
                        en.unanswered.set(e); // before forget completes its future: see writeFirstStored
                    }
                    forget(en, "Put failed");
                }
            }
            log.debug("Put of {} KV blocks to {} failed: {}", batch.size(), client.endpoint(), e.toString());
            return;
        }
        // Outside the lock, which the engine thread's accept takes: the int8 round trip is a pass over the block.
        List<StoredBlocks.Sums> sums = new ArrayList<>(batch.size());
        for (int i = 0; i < batch.size(); i++) {
            sums.add(outcomes.get(i) == PutOutcome.PUT_OUTCOME_STORED
                    ? StoredBlocks.sumsOf(client.payload(), payloads.get(i)) : StoredBlocks.Sums.UNCHECKED);
        }
        synchronized (known) {
            for (int i = 0; i < batch.size(); i++) {
                QueuedBlock en = batch.get(i);
                PutOutcome o = outcomes.get(i);
                if (o == PutOutcome.PUT_OUTCOME_STORED || o == PutOutcome.PUT_OUTCOME_ALREADY_PRESENT) {
                    queued.remove(en.block.hash());
                    known.stored(en.block.hash(), sums.get(i));
                    settled(en);
                    written.incrementAndGet();
                    writtenBytes.addAndGet(payloads.get(i).length);
                    en.done.complete(true);
                } else if (o == PutOutcome.PUT_OUTCOME_DECLINED && (en.pinNext && !pinNext[i]
                        || en.swapOut && !swapOut[i])) {
                    // An offload or a swap-out named it while its ordinary Put was in flight: once more, unasked.
                    requeued(en);
                    log.debug("KV block {} declined; sent again for an offload or a swap-out", en.block.hash());
                } else {
                    declined.incrementAndGet();
                    forget(en, o.name());
                }
            }
        }
    }

    /** Blocks stored (acknowledged STORED or ALREADY_PRESENT). */
    public long writtenBlocks() {
        return written.get();
    }

    /** Payload bytes of {@link #writtenBlocks}. */
    public long writtenBytes() {
        return writtenBytes.get();
    }

    /**
     * Blocks not queued for want of room: ordinary ones offered while the ordinary queue was full (not even copied),
     * and swap-out blocks past the priority budget (see the class comment).
     */
    public long droppedBlocks() {
        return dropped.get();
    }

    /** Blocks whose Put stream failed (unreachable, timed out, refused). */
    public long failedBlocks() {
        return failed.get();
    }

    /** Blocks the service answered DECLINED or NO_SPACE. */
    public long declinedBlocks() {
        return declined.get();
    }

    /** Blocks waiting in the queue now. */
    public int queuedBlocks() {
        return queue.size();
    }

    /**
     * Stops taking blocks and writes what is queued for up to {@code drain} (a gateway that shuts down writes back
     * what its finished sequences left), then stops the writer.
     */
    public void close(Duration drain) {
        open = false;
        try {
            writer.join(Math.max(1, drain.toMillis()));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (writer.isAlive()) {
            log.warn("{} KV blocks not written back to {} before shutdown", queue.size(), client.endpoint());
            writer.interrupt();
        }
    }

    /** {@link #close(Duration)} with the drain time given at construction. */
    @Override
    public void close() {
        close(drain);
    }
}
