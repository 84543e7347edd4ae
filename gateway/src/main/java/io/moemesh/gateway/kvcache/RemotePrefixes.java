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
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kvcache-service as the gateway's second tier, through the scheduler's hooks (issue 11, item 3).
 *
 * <p><b>Admission</b> ({@link PrefixLoader}): before a sequence is admitted, its context's full blocks (those the
 * prefix source may hand out: before the last token) are hashed; the ones after the leading run already in the
 * local cache are looked up in the service ({@code Lookup}) and the found run fetched ({@code Get}) on a gateway
 * thread, bounded by {@code fetchTimeout}; meanwhile the sequence waits and others run. At a later step boundary, on
 * the engine thread, the verified blocks are imported into the local cache (hash chain recomputed from the tokens,
 * payload size checked, and the CRC32C compared for blocks this gateway wrote, {@link WriteBack#heldOtherBytes}), and the
 * sequence is admitted: the cache, as the prefix source, finds them like its own, so {@code cached_tokens} counts
 * local and fetched tokens alike. A fetch that fails, times out or returns a bad block just brings fewer blocks (the
 * rest is computed: same tokens). Fewer than {@code minFetchBlocks} missing blocks are not worth a round trip.
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
 * <p><b>Preemption</b> ({@link PreemptionPolicy}): {@code recompute} and {@code swap} force either; {@code auto}
 * swaps out when restoring the sequence's full blocks is predicted faster than recomputing them, from the measured
 * restore bandwidth and prefill throughput ({@link TransferRates}; recompute until both are measured). A swap-out
 * queues the sequence's blocks that the service does not have ahead of all other write-backs; on resume the
 * admission path above waits for those writes to settle and restores the blocks the local cache lost meanwhile
 * (once the pool has room for the whole context: a restore into a full pool would be evicted again before the
 * sequence is admitted). A sequence preempted for recompute resumes from the local cache only.
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
    private final Map<Long, CompletableFuture<Fetched>> fetching = new HashMap<>();
    private final Map<Long, CompletableFuture<Void>> swappedOut = new HashMap<>();
    /** Engine thread only: blocks each started, not yet imported fetch may bring (the fetch budget's share). */
    private final Map<Long, Integer> reserved = new HashMap<>();
    private int reservedBlocks;
    private volatile long peakReservedBlocks;
    private final AtomicLong fetchedBlocks = new AtomicLong();
    private final AtomicLong fetches = new AtomicLong();
    private final AtomicLong fetchFailures = new AtomicLong();
    private final AtomicLong badBlocks = new AtomicLong();
    private final AtomicLong swapOuts = new AtomicLong();
    private final AtomicLong restores = new AtomicLong();
    private final AtomicLong restoredBlocks = new AtomicLong();

    /** Blocks fetched for one sequence, block 0 of the run first; {@code failed}: the fetch ended early. */
    record Fetched(List<BlockContents> blocks, boolean failed) {
    }

    /**
     * @param fetchers threads that run the fetches (blocking gRPC calls); shut down by {@link #close}
     */
    public RemotePrefixes(PrefixCachingKvCache cache, KvCacheClient client, WriteBack writeBack, TransferRates rates,
                          Duration fetchTimeout, int minFetchBlocks, Mode mode, ExecutorService fetchers) {
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
        CompletableFuture<Fetched> f = fetching.get(seqId);
        if (f == null) {
            CompletableFuture<Void> written = swappedOut.get(seqId);
            if (again && written == null) {
                return true; // preempted for recompute: the local cache only
            }
            int b = cache.blockTokens();
            if (again && cache.freeBlocks() + cache.cachedBlocks() < (context.length + b - 1) / b) {
                // No room to resume yet: a restore now would be evicted again before the admission that follows.
                return true;
            }
            int full = (context.length - 1) / b;
            List<BlockHash> chain = cache.prefixChain(context, tenant, full);
            int local = cache.presentBlocks(chain);
            if (full - local < minFetchBlocks) {
                return true;
            }
            if (reservedBlocks + full - local > cache.freeBlocks() + cache.cachedBlocks()) {
                return true; // over the fetch budget: computing these blocks gives the same tokens
            }
            swappedOut.remove(seqId);
            f = start(written, chain, local, Arrays.copyOf(context, full * b), tenant, again);
            fetching.put(seqId, f);
            reserve(seqId, full - local);
            return false;
        }
        if (!f.isDone()) {
            return false;
        }
        fetching.remove(seqId);
        unreserve(seqId);
        importFetched(f, again);
        return true;
    }

    private void reserve(long seqId, int blocks) {
        reserved.put(seqId, blocks);
        reservedBlocks += blocks;
        peakReservedBlocks = Math.max(peakReservedBlocks, reservedBlocks);
    }

    private void unreserve(long seqId) {
        Integer blocks = reserved.remove(seqId);
        if (blocks != null) {
            reservedBlocks -= blocks;
        }
    }

    /** Bytes the started, not yet imported fetches may hold decoded (engine thread). */
    long reservedFetchBytes() {
        return (long) reservedBlocks * client.payload().bytes();
    }

    /** The highest {@link #reservedFetchBytes} so far (any thread). */
    long peakReservedFetchBytes() {
        return peakReservedBlocks * client.payload().bytes();
    }

    private CompletableFuture<Fetched> start(CompletableFuture<Void> written, List<BlockHash> chain, int local,
                                             int[] tokens, String tenant, boolean again) {
        long deadline = System.nanoTime() + fetchTimeout.toNanos();
        CompletableFuture<Void> before = written == null ? CompletableFuture.completedFuture(null)
                : written.exceptionally(e -> null);
        CompletableFuture<Fetched> f = before.thenApplyAsync(x -> fetch(chain, local, tokens, tenant, deadline), fetchers)
                .orTimeout(fetchTimeout.toNanos(), TimeUnit.NANOSECONDS);
        f.whenComplete((r, e) -> wakeUp.run());
        fetches.incrementAndGet();
        return f;
    }

    /** On a fetch thread: Lookup then Get of the run after the local blocks, each block checked. */
    private Fetched fetch(List<BlockHash> chain, int local, int[] tokens, String tenant, long deadline) {
        List<BlockHash> rest = chain.subList(local, chain.size());
        long start = System.nanoTime();
        int present = client.lookup(rest, remaining(deadline));
        if (present < minFetchBlocks) {
            return new Fetched(List.of(), false);
        }
        List<byte[]> payloads;
        boolean failed = false;
        try {
            payloads = client.get(rest.subList(0, present), remaining(deadline));
        } catch (KvCacheClient.BadBlockException e) {
            badBlocks.incrementAndGet();
            log.debug("KV fetch from {}: {}", client.endpoint(), e.getMessage());
            return new Fetched(List.of(), true);
        }
        int b = cache.blockTokens();
        List<BlockContents> blocks = new ArrayList<>(payloads.size());
        long bytes = 0;
        for (int i = 0; i < payloads.size(); i++) {
            int at = local + i;
            BlockHash h = chain.get(at);
            byte[] p = payloads.get(i);
            if (writeBack != null && writeBack.heldOtherBytes(h, p)) {
                badBlocks.incrementAndGet();
                log.warn("KV block {} from {} does not hold the bytes this gateway stored: it and the blocks after it "
                        + "are recomputed", h, client.endpoint());
                failed = true;
                break;
            }
            float[][][] kv = client.payload().decode(p);
            blocks.add(new BlockContents(h, at == 0 ? null : chain.get(at - 1),
                    Arrays.copyOfRange(tokens, at * b, (at + 1) * b), tenant, at, kv[0], kv[1]));
            bytes += p.length;
        }
        rates.restored(bytes, System.nanoTime() - start);
        return new Fetched(blocks, failed || payloads.size() < present);
    }

    private static Duration remaining(long deadline) {
        return Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
    }

    /** Engine thread: the fetch ended; whatever arrived intact joins the local cache. */
    private void importFetched(CompletableFuture<Fetched> f, boolean again) {
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
            if (again && n > 0) {
                restores.incrementAndGet();
                restoredBlocks.addAndGet(n);
            }
        } catch (IllegalArgumentException e) {
            // The local blocks the run continues were evicted meanwhile, or a block does not hash to its tokens.
            fetchFailures.incrementAndGet();
            log.debug("fetched KV blocks not imported: {}", e.getMessage());
        }
    }

    @Override
    public void forget(long seqId) {
        CompletableFuture<Fetched> f = fetching.remove(seqId);
        if (f != null) {
            f.cancel(false);
        }
        unreserve(seqId);
        swappedOut.remove(seqId);
    }

    @Override
    public Choice choose(long seqId, int[] tokens, String tenant) {
        swappedOut.remove(seqId);
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
        List<BlockContents> copies = cache.copyHeldBlocks(seqId, writeBack::wants);
        swappedOut.put(seqId, writeBack.writeFirst(copies, chain));
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

    public TransferRates rates() {
        return rates;
    }

    @Override
    public void close() {
        fetchers.shutdownNow();
    }
}
