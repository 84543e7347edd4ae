package io.moemesh.gateway.kvcache;

import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.generate.PrefixLoader;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kvcache-service as the gateway's second tier, through the scheduler's hooks (issue 11, item 3).
 *
 * <p><b>Admission</b> ({@link PrefixLoader}): before a sequence is admitted, its context's full blocks (those the
 * prefix source may hand out: before the last token) are hashed; the ones after the leading run already in the local
 * cache are looked up in the service ({@code Lookup}) and the found run fetched ({@code Get}) on a gateway thread,
 * bounded by {@code fetchTimeout}; meanwhile the sequence waits and others run. The Lookup carries the whole chain from
 * block 0 and says how many leading blocks are local ({@link KvCacheClient#lookup(List, int, boolean, Duration)}), so
 * that the service's policy sees the request as it is (a next turn whose history is still local continues its
 * conversation from block 0); a sequence that fetches nothing is announced all the same ({@link
 * SequenceAnnouncements}: the engine thread hands the chain to the client's announcer thread, never queued behind
 * the fetches, at most {@link ChainLookups#MAX_ANNOUNCEMENTS_IN_FLIGHT} unanswered, one more dropped, counted once
 * per sequence in {@link #droppedAnnouncements}), and one asked about again (a resume, a second try at its
 * admission) says it is a repeat, so
 * the policy sees each admitted request once. A sequence counts as announced only once its Lookup or announcement went
 * out: a fetch that ended before its Lookup did (it timed out queued behind others, or waiting for its swap-out's
 * writes) announces the chain when it ends. At a later step boundary, on the engine thread, the
 * verified blocks are imported into the local cache (hash chain recomputed from the tokens, payload size checked, and
 * the CRC32C compared for blocks this gateway wrote, {@link StoredBlocks#heldOtherBytes}), and the sequence is
 * admitted: the cache, as the prefix source, finds them like its own, so {@code cached_tokens} counts local and fetched
 * tokens alike. A fetch that fails, times out or returns a bad block just brings fewer blocks (the rest is computed:
 * same tokens). Fewer than {@code minFetchBlocks} missing blocks are not worth a round trip (the chain is only
 * announced). A block the write-back remembers as stored but the Lookup or Get stops at is forgotten by the write-back
 * ({@link StoredBlocks#notStored}): it is sent again when next offered. A block whose bytes are not the ones this
 * gateway stored is not: its checksum is kept, so it is refused (counted in {@link #badBlocks}) and recomputed on every fetch, since
 * the service keeps that copy (sending ours again is answered {@code ALREADY_PRESENT}). Another gateway's bitwise
 * different floats for the same hash, stored after the service lost ours, are refused alike: correct, at the cost of
 * recomputing them.
 *
 * <p><b>Fetch budget</b>: a fetched run is held decoded (a block's payload in floats) until its sequence is admitted,
 * which may be many steps away when the pool is full, and every waiting sequence asks in one step. So the blocks of
 * started, not yet imported fetches (each counted as all the blocks it may bring) never pass the room the local pool
 * has for them when a fetch starts: its free plus its cached (evictable) blocks; those blocks would have to fit there
 * anyway. A sequence whose fetch would pass it is admitted without a fetch (it prefills those blocks: same tokens,
 * and it never waits for room that others hold); if it is not admitted in that step, the next step asks again. A
 * fetch cancelled by {@link #forget} frees its share at once; its thread may still finish decoding, for at most
 * {@code fetchTimeout}.
 *
 * <p><b>Preemption</b> ({@link PreemptionPolicy}): {@code recompute} and {@code swap} force either; {@code auto} swaps
 * out when restoring the sequence's full blocks is predicted faster than recomputing them, from the measured restore
 * bandwidth and prefill throughput ({@link TransferRates}; recompute until both are measured). Every fetch is a sample
 * of the restore bandwidth, timed from when it was asked for (a resume's wait for its swap-out's writes included); one
 * that failed or timed out is a sample of what it cost, at least {@code fetchTimeout} plus recomputing its blocks
 * anyway ({@link TransferRates#restoreFailed}), so a service that slows down turns {@code auto} to recompute. A
 * swap-out queues the sequence's blocks that the service does not have (as far as the write-back knows) ahead of all
 * other write-backs, as many as its bound for priority writes leaves room for ({@link WriteBack#swapOutFilter}), marked
 * {@code swap_out} so that the service's admission policy does not decline one (the restore would stop at it, every
 * block after it written for nothing); on resume the admission path above waits for those writes to settle and restores
 * the blocks the local cache lost meanwhile, once the pool has room for the whole context (a restore into a full pool
 * would be evicted again before the sequence is admitted). Until then it waits and keeps its place ({@link
 * #holdsPlace}: nobody is admitted past it, so the room it waits for is not taken; the running sequences, which
 * arrived before it, free it as they end), through its restore's fetch too, but only while that can pay and for at
 * most {@code fetchTimeout} ({@link SwapOuts}: a swap-out that queued nothing and whose blocks the service is not
 * known to hold has nothing to restore); past that, and for a context the pool can never hold, it resumes at once,
 * recomputing. A sequence preempted for recompute resumes the same way, without writes to wait for and without holding
 * its place (admitted as soon as its first chunk fits): what the local cache lost and the service has (written back
 * when evicted, or offloaded for {@code Attend}) is fetched, the rest recomputed.
 *
 * <p>Engine-thread methods ({@link #ready}, {@link #forget}, {@link #choose}, {@link #swapOut}) never block; the
 * counters may be read from any thread.
 */
public final class RemotePrefixes implements PrefixLoader, PreemptionPolicy, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RemotePrefixes.class);

    /** How preemption chooses. */
    public enum Mode {
        /** Swap out when restoring is predicted faster than recomputing. */
        AUTO,
        /** Always recompute. */
        RECOMPUTE,
        /** Always swap out. */
        SWAP
    }

    private final PrefixCachingKvCache cache;
    private final KvCacheClient client;
    private final WriteBack writeBack;
    private final TransferRates rates;
    private final Duration fetchTimeout;
    private final int minFetchBlocks;
    private final Mode mode;
    private final ExecutorService fetchers;
    private volatile Runnable wakeUp = () -> { };
    /** Engine thread only. */
    private final Map<Long, Pending> fetching = new HashMap<>();
    /** Engine thread only (but its counters). */
    private final SequenceAnnouncements announced;
    /** Engine thread only. */
    private final SwapOuts swaps;
    /** Engine thread only (but its peak). */
    private final FetchBudget budget = new FetchBudget();
    private final AtomicLong fetchedBlocks = new AtomicLong();
    private final AtomicLong fetches = new AtomicLong();
    private final AtomicLong fetchFailures = new AtomicLong();
    private final AtomicLong badBlocks = new AtomicLong();
    private final AtomicLong swapOuts = new AtomicLong();
    private final AtomicLong restores = new AtomicLong();
    private final AtomicLong restoredBlocks = new AtomicLong();

    /**
     * Blocks fetched for one sequence, block 0 of the run first; {@code failed}: the fetch ended early; {@code bytes}:
     * the payload bytes it moved.
     */
    record Fetched(List<BlockContents> blocks, boolean failed, long bytes) {
    }

    /**
     * A fetch started: its outcome, whether it restores a swapped-out sequence (counted in {@link #restores}), its
     * chain, and whether its Lookup went out ({@link #LOOKUP_SENT}; the fetch thread claims it just before sending,
     * the engine thread claims {@link #LOOKUP_ABANDONED} for one that ended first, which then never sends it).
     */
    private record Pending(CompletableFuture<Fetched> future, boolean swapped, List<BlockHash> chain,
                           AtomicInteger lookup) {
    }

    private static final int LOOKUP_NOT_YET = 0;
    private static final int LOOKUP_SENT = 1;
    private static final int LOOKUP_ABANDONED = 2;

    /**
     * @param fetchers threads that run the fetches (blocking gRPC calls); shut down by {@link #close}
     */
    public RemotePrefixes(PrefixCachingKvCache cache, KvCacheClient client, WriteBack writeBack, TransferRates rates,
                          Duration fetchTimeout, int minFetchBlocks, Mode mode, ExecutorService fetchers) {
        this(cache, client, writeBack, rates, fetchTimeout, minFetchBlocks, mode, fetchers, System::nanoTime);
    }

    /** @param clock times a swapped-out sequence's wait for room ({@link System#nanoTime} but in tests) */
    RemotePrefixes(PrefixCachingKvCache cache, KvCacheClient client, WriteBack writeBack, TransferRates rates,
                   Duration fetchTimeout, int minFetchBlocks, Mode mode, ExecutorService fetchers, LongSupplier clock) {
        if (cache.blockTokens() != client.payload().blockTokens()) {
            throw new IllegalArgumentException("the KV cache has " + cache.blockTokens() + "-token blocks, the "
                    + "kvcache payload " + client.payload().blockTokens());
        }
        this.cache = cache;
        this.client = client;
        this.writeBack = writeBack;
        this.rates = rates;
        this.fetchTimeout = fetchTimeout;
        this.minFetchBlocks = Math.max(1, minFetchBlocks);
        this.mode = mode;
        this.fetchers = fetchers;
        this.announced = new SequenceAnnouncements(client, fetchTimeout);
        this.swaps = new SwapOuts(writeBack, fetchTimeout, clock);
    }

    /** A pool of {@code threads} daemon threads for {@link #RemotePrefixes}'s fetches. */
    public static ExecutorService fetchThreads(int threads) {
        return Executors.newFixedThreadPool(threads, Thread.ofPlatform().name("moemesh-kv-fetch-", 0).daemon()
                .factory());
    }

    /** Wakes the engine loop when a fetch ends (the loop may be idle while every waiting sequence loads). */
    public void setWakeUp(Runnable wakeUp) {
        this.wakeUp = wakeUp;
    }

    @Override
    public boolean ready(long seqId, int[] context, String tenant, boolean again) {
        Pending f = fetching.get(seqId);
        if (f == null) {
            int b = cache.blockTokens();
            int blocks = (context.length + b - 1) / b;
            if (again && cache.freeBlocks() + cache.cachedBlocks() < blocks) {
                // No room to resume yet: a restore now would be evicted again before the admission that follows. A
                // swapped-out sequence waits for that room in its place (holdsPlace), within SwapOuts' bounds;
                // admitted now it would recompute what the service holds. Any other resumes as it can.
                return !swaps.awaitRoom(seqId, blocks <= cache.totalBlocks());
            }
            swaps.roomFound(seqId);
            CompletableFuture<Void> written = swaps.written(seqId);
            int full = (context.length - 1) / b;
            List<BlockHash> chain = cache.prefixChain(context, tenant, full);
            int local = cache.presentBlocks(chain);
            boolean repeat = announced.told(seqId);
            if (full - local < minFetchBlocks
                    || !budget.fits(full - local, cache.freeBlocks() + cache.cachedBlocks())) {
                // Too few to fetch, or over the fetch budget (computing them gives the same tokens): no Lookup, but
                // the service's policy is still told of a new request.
                announced.announce(seqId, chain);
                return true;
            }
            swaps.forget(seqId);
            AtomicInteger lookup = new AtomicInteger(LOOKUP_NOT_YET);
            f = new Pending(start(written, chain, local, repeat, Arrays.copyOf(context, full * b), tenant, lookup),
                    again && written != null, chain, lookup);
            fetching.put(seqId, f);
            budget.reserve(seqId, full - local);
            return false;
        }
        if (!f.future().isDone()) {
            return false;
        }
        fetching.remove(seqId);
        budget.release(seqId);
        if (f.lookup().compareAndSet(LOOKUP_NOT_YET, LOOKUP_ABANDONED)) {
            // Ended before its Lookup went out: the request is admitted all the same, so the policy is told now.
            announced.announce(seqId, f.chain());
        } else {
            announced.lookupSent(seqId);
        }
        importFetched(f.future(), f.swapped());
        return true;
    }

    /** Bytes the started, not yet imported fetches may hold decoded (engine thread). */
    long reservedFetchBytes() {
        return (long) budget.blocks() * client.payload().bytes();
    }

    /** The highest {@link #reservedFetchBytes} so far (any thread). */
    long peakReservedFetchBytes() {
        return budget.peakBlocks() * client.payload().bytes();
    }

    private CompletableFuture<Fetched> start(CompletableFuture<Void> written, List<BlockHash> chain, int local,
                                             boolean repeat, int[] tokens, String tenant, AtomicInteger lookup) {
        long asked = System.nanoTime();
        long deadline = asked + fetchTimeout.toNanos();
        CompletableFuture<Void> before = written == null ? CompletableFuture.completedFuture(null)
                : written.exceptionally(e -> null);
        CompletableFuture<Fetched> f = before
                .thenApplyAsync(x -> fetch(chain, local, repeat, tokens, tenant, deadline, lookup), fetchers)
                .orTimeout(fetchTimeout.toNanos(), TimeUnit.NANOSECONDS);
        int wanted = chain.size() - local;
        f.whenComplete((r, e) -> {
            measured(r, e, wanted, System.nanoTime() - asked);
            wakeUp.run();
        });
        fetches.incrementAndGet();
        return f;
    }

    /**
     * A fetch of {@code wanted} blocks ended after {@code nanos} (from when it was asked for): a sample of the restore
     * bandwidth. One that moved blocks is their bytes over that time; one that failed, timed out or brought nothing
     * though the service had blocks is the penalty of {@link TransferRates#restoreFailed} (its time, at least the
     * fetch timeout, plus recomputing the blocks), else a service that slowed down would keep {@code auto} swapping
     * at its last fast rate. A fetch forgotten (cancelled) or that found too few blocks to ask for is no sample.
     */
    private void measured(Fetched r, Throwable e, int wanted, long nanos) {
        if (e instanceof CancellationException) {
            return;
        }
        if (e == null && r.bytes() > 0) {
            rates.restored(r.bytes(), nanos);
        } else if (e != null || r.failed()) {
            rates.restoreFailed((long) wanted * client.payload().bytes(), (long) wanted * cache.blockTokens(),
                    Math.max(nanos, fetchTimeout.toNanos()));
        }
    }

    /**
     * On a fetch thread: Lookup of the whole chain (the first {@code local} blocks held here), then Get (or Locate and
     * the local reads) of the found run after the local blocks, each block checked. Nothing when the engine thread
     * abandoned the fetch first ({@code lookup}).
     */
    private Fetched fetch(List<BlockHash> chain, int local, boolean repeat, int[] tokens, String tenant,
                          long deadline, AtomicInteger lookup) {
        if (!lookup.compareAndSet(LOOKUP_NOT_YET, LOOKUP_SENT)) {
            return new Fetched(List.of(), false, 0);
        }
        List<BlockHash> rest = chain.subList(local, chain.size());
        int present = client.lookup(chain, local, repeat, remaining(deadline));
        if (present < rest.size()) {
            notStored(rest.get(present)); // the Lookup stopped there: the service does not have it
        }
        if (present < minFetchBlocks) {
            return new Fetched(List.of(), false, 0);
        }
        KvCacheClient.Fetch got = client.fetch(rest.subList(0, present), local, remaining(deadline));
        List<byte[]> payloads = got.blocks();
        boolean failed = false;
        if (got.bad() != null) {
            badBlocks.incrementAndGet();
            failed = true;
            log.debug("KV fetch from {}: {}", client.endpoint(), got.bad());
        } else if (payloads.size() < present) {
            notStored(rest.get(payloads.size())); // a miss: gone since the Lookup
        }
        int b = cache.blockTokens();
        List<BlockContents> blocks = new ArrayList<>(payloads.size());
        long bytes = 0;
        for (int i = 0; i < payloads.size(); i++) {
            int at = local + i;
            BlockHash h = chain.get(at);
            byte[] p = payloads.get(i);
            if (writeBack != null && writeBack.memory().heldOtherBytes(h, p)) {
                badBlocks.incrementAndGet();
                // Corrupted, or (the service lost our copy) another writer's: refused, and its checksum kept (no
                // notStored), so it is refused on every fetch; the service keeps that copy whatever we send.
                log.warn("KV block {} from {} does not hold the bytes this gateway stored: it and the blocks after it "
                        + "are recomputed", h, client.endpoint());
                failed = true;
                break;
            }
            float[][][] kv = client.payload().decode(p);
            blocks.add(new BlockContents(h, at == 0 ? null : chain.get(at - 1),
                    Arrays.copyOfRange(tokens, at * b, (at + 1) * b), tenant, at, kv[0], kv[1]));
            bytes += p.length;
            if (writeBack != null) {
                writeBack.memory().fetched(h); // the service holds it: not written back when the cache lets go of it
            }
        }
        return new Fetched(blocks, failed || payloads.size() < present, bytes);
    }

    private void notStored(BlockHash h) {
        if (writeBack != null) {
            writeBack.memory().notStored(h);
        }
    }

    private static Duration remaining(long deadline) {
        return Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
    }

    /** Engine thread: the fetch ended; whatever arrived intact joins the local cache. */
    private void importFetched(CompletableFuture<Fetched> f, boolean swapped) {
        Fetched r;
        try {
            r = f.join();
        } catch (RuntimeException e) {
            fetchFailures.incrementAndGet();
            log.debug("KV fetch from {} failed: {}", client.endpoint(), e.toString());
            return;
        }
        if (r.failed()) {
            fetchFailures.incrementAndGet();
        }
        if (r.blocks().isEmpty()) {
            return;
        }
        try {
            // What the import wrote: blocks another sequence registered while the fetch was in flight were already
            // here (they are findable, not fetched), and a full pool may take none.
            long before = cache.importedBlocks();
            cache.importBlocks(r.blocks());
            long n = cache.importedBlocks() - before;
            fetchedBlocks.addAndGet(n);
            if (swapped && n > 0) {
                restores.incrementAndGet();
                restoredBlocks.addAndGet(n);
            }
        } catch (IllegalArgumentException e) {
            // The local blocks the run continues were evicted meanwhile, or a block does not hash to its tokens.
            fetchFailures.incrementAndGet();
            log.debug("fetched KV blocks not imported: {}", e.getMessage());
        }
    }

    /**
     * A swapped-out sequence keeps its place while it waits for the pool's room for its restore (within {@link
     * SwapOuts}' bounds) and while that restore is fetched: nobody admitted past it takes the room (it would be left
     * to recompute).
     */
    @Override
    public boolean holdsPlace(long seqId) {
        Pending f = fetching.get(seqId);
        return f != null ? f.swapped() : swaps.awaitingRoom(seqId);
    }

    @Override
    public void forget(long seqId) {
        Pending f = fetching.remove(seqId);
        if (f != null) {
            f.lookup().compareAndSet(LOOKUP_NOT_YET, LOOKUP_ABANDONED); // a queued fetch sends no Lookup now
            f.future().cancel(false);
        }
        budget.release(seqId);
        swaps.forget(seqId);
        announced.forget(seqId);
    }

    @Override
    public Choice choose(long seqId, int[] tokens, String tenant) {
        swaps.forget(seqId);
        long full = tokens.length / cache.blockTokens();
        return switch (mode) {
            case RECOMPUTE -> Choice.RECOMPUTE;
            case SWAP -> full > 0 ? Choice.SWAP_OUT : Choice.RECOMPUTE;
            case AUTO -> rates.restoreFaster(full * cache.blockTokens(), bytesPerToken()) ? Choice.SWAP_OUT
                    : Choice.RECOMPUTE;
        };
    }

    private long bytesPerToken() {
        return client.payload().bytes() / client.payload().blockTokens();
    }

    @Override
    public void swapOut(long seqId, int[] tokens, String tenant) {
        List<BlockHash> chain = cache.prefixChain(tokens, tenant, tokens.length / cache.blockTokens());
        // Only blocks that will be queued are copied: those the service lacks, within the priority writes' bound.
        swaps.swapOut(seqId, cache.copyHeldBlocks(seqId, writeBack.swapOutFilter()), chain);
        swapOuts.incrementAndGet();
    }

    /** Fetches started (admissions and restores that had blocks to look for). */
    public long fetches() {
        return fetches.get();
    }

    /** Blocks fetched from the service and imported into the local cache (ones already present not counted). */
    public long fetchedBlocks() {
        return fetchedBlocks.get();
    }

    /** {@link #fetchedBlocks} in tokens. */
    public long fetchedTokens() {
        return fetchedBlocks.get() * cache.blockTokens();
    }

    /** Fetches that failed, timed out or ended early at a bad block (the request recomputed instead). */
    public long fetchFailures() {
        return fetchFailures.get();
    }

    /** Blocks refused on arrival: a contract violation or a CRC32C other than the one this gateway stored. */
    public long badBlocks() {
        return badBlocks.get();
    }

    /** Preempted sequences swapped out. */
    public long swapOuts() {
        return swapOuts.get();
    }

    /** Resumes of swapped-out sequences that restored blocks from the service (imported at least one). */
    public long restores() {
        return restores.get();
    }

    /** Blocks those resumes restored (imported). */
    public long restoredBlocks() {
        return restoredBlocks.get();
    }

    /** Requests that fetched nothing announced to the service (a Lookup with every block held). */
    public long announcements() {
        return announced.sent();
    }

    /**
     * Sequences an announcement was dropped for, once each, because {@link ChainLookups#MAX_ANNOUNCEMENTS_IN_FLIGHT}
     * were unanswered (a later try of one may have been sent: it is in {@link #announcements} too).
     */
    public long droppedAnnouncements() {
        return announced.droppedSequences();
    }

    public TransferRates rates() {
        return rates;
    }

    @Override
    public void close() {
        fetchers.shutdownNow();
    }
}
