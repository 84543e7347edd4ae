package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.BlockHistory;
import io.moemesh.kvcache.policy.EvictionPolicy;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Blocks in host memory within a byte budget. When a put needs room, the {@link EvictionPolicy} picks unpinned
 * victims; each is handed to the eviction sink <em>before</em> it leaves the map (the {@link TieredKvStore} demotes
 * it to SSD there), so a block being demoted is visible in at least one tier at every instant.
 *
 * <p>One monitor guards everything (a hit updates the policy's order, so even reads mutate); the blocks themselves
 * are immutable, so a returned block is never copied.
 */
public final class DramTier implements KvTier {
    private static final Logger log = LoggerFactory.getLogger(DramTier.class);

    private final KvLayout layout;
    private final long capacityBytes;
    private final EvictionPolicy policy;
    private final LongSupplier clock;
    private final Consumer<KvBlock> evictionSink;
    private final Map<BlockKey, Entry> entries = new HashMap<>();
    private final TierCounters counters = new TierCounters();
    private long usedBytes;
    private long pinnedBytes;
    private boolean closed;

    private static final class Entry {
        final KvBlock block;
        BlockHistory history;
        boolean pinned;

        Entry(KvBlock block, BlockHistory history) {
            this.block = block;
            this.history = history;
        }
    }

    /**
     * @param capacityBytes the byte budget (≥ one block)
     * @param policy        eviction order (a fresh instance per tier: it holds the tier's resident set)
     * @param clock         the time {@link BlockHistory} records (System::nanoTime; a replay passes trace time)
     * @param evictionSink  receives each victim before it leaves the tier (demotion); exceptions are logged and the
     *                      block dropped, since a cache may always forget
     */
    public DramTier(KvLayout layout, long capacityBytes, EvictionPolicy policy, LongSupplier clock,
                    Consumer<KvBlock> evictionSink) {
        this.layout = Objects.requireNonNull(layout, "layout");
        if (capacityBytes < layout.bytesPerBlock()) {
            throw new IllegalArgumentException("DRAM capacity must hold at least one block of " + layout.bytesPerBlock()
                    + " bytes, got " + capacityBytes);
        }
        this.capacityBytes = capacityBytes;
        this.policy = Objects.requireNonNull(policy, "policy");
        this.clock = Objects.requireNonNull(clock, "clock");
        this.evictionSink = Objects.requireNonNull(evictionSink, "evictionSink");
    }

    /** A tier that simply drops its victims, with the system clock. */
    public DramTier(KvLayout layout, long capacityBytes, EvictionPolicy policy) {
        this(layout, capacityBytes, policy, System::nanoTime, b -> { });
    }

    @Override
    public TierKind kind() {
        return TierKind.DRAM;
    }

    @Override
    public KvLayout layout() {
        return layout;
    }

    @Override
    public synchronized PutResult put(KvBlock block, AccessHint hint) {
        checkOpen();
        Tiers.checkBlock(block, layout, capacityBytes, "DRAM tier");
        Entry e = entries.get(block.key());
        if (e != null) {
            touch(e, hint);
            return PutResult.ALREADY_PRESENT;
        }
        long size = block.sizeBytes();
        // Check before evicting anything: NO_SPACE must leave the tier unchanged.
        if (pinnedBytes + size > capacityBytes) {
            return PutResult.NO_SPACE;
        }
        while (usedBytes + size > capacityBytes) {
            BlockKey victim = policy.victim(k -> !entries.get(k).pinned).orElseThrow(
                    () -> new IllegalStateException("eviction policy found no unpinned block while "
                            + (usedBytes - pinnedBytes) + " unpinned bytes are resident"));
            evict(victim);
        }
        Entry added = new Entry(block, BlockHistory.inserted(block.key(), size, clock.getAsLong(), hint));
        entries.put(block.key(), added);
        usedBytes += size;
        counters.bytesWritten.add(size);
        policy.onInsert(added.history);
        return PutResult.STORED;
    }

    private void evict(BlockKey key) {
        Entry e = entries.get(key);
        try {
            evictionSink.accept(e.block);
        } catch (RuntimeException ex) {
            log.warn("demoting block {} failed, dropping it: {}", key, ex.toString());
        }
        drop(key, e);
        counters.evictions.increment();
    }

    private void drop(BlockKey key, Entry e) {
        entries.remove(key);
        usedBytes -= e.block.sizeBytes();
        if (e.pinned) {
            pinnedBytes -= e.block.sizeBytes();
        }
        policy.onRemove(key);
    }

    private void touch(Entry e, AccessHint hint) {
        e.history = e.history.accessed(clock.getAsLong(), hint);
        policy.onAccess(e.history);
    }

    @Override
    public synchronized Optional<KvBlock> get(BlockKey key, AccessHint hint) {
        checkOpen();
        Entry e = entries.get(key);
        if (e == null) {
            counters.misses.increment();
            return Optional.empty();
        }
        touch(e, hint);
        counters.hits.increment();
        counters.bytesRead.add(e.block.sizeBytes());
        return Optional.of(e.block);
    }

    @Override
    public synchronized boolean contains(BlockKey key) {
        return entries.containsKey(key);
    }

    /** The block's history in this tier, empty when it is not resident (for policies, tests and the replay). */
    public synchronized Optional<BlockHistory> history(BlockKey key) {
        Entry e = entries.get(key);
        return e == null ? Optional.empty() : Optional.of(e.history);
    }

    @Override
    public synchronized boolean remove(BlockKey key) {
        Entry e = entries.get(key);
        if (e == null) {
            return false;
        }
        drop(key, e);
        return true;
    }

    @Override
    public synchronized boolean pin(BlockKey key) {
        Entry e = entries.get(key);
        if (e == null) {
            return false;
        }
        if (!e.pinned) {
            e.pinned = true;
            pinnedBytes += e.block.sizeBytes();
        }
        return true;
    }

    @Override
    public synchronized boolean unpin(BlockKey key) {
        Entry e = entries.get(key);
        if (e == null || !e.pinned) {
            return false;
        }
        e.pinned = false;
        pinnedBytes -= e.block.sizeBytes();
        return true;
    }

    @Override
    public synchronized boolean isPinned(BlockKey key) {
        Entry e = entries.get(key);
        return e != null && e.pinned;
    }

    /**
     * The resident blocks now (a snapshot, in no particular order), for {@link TieredKvStore#demoteAll()} at
     * shutdown.
     */
    public synchronized java.util.List<KvBlock> residentBlocks() {
        return entries.values().stream().map(e -> e.block).toList();
    }

    @Override
    public long capacityBytes() {
        return capacityBytes;
    }

    /** Bytes a put can take without evicting anything. */
    public synchronized long freeBytes() {
        return capacityBytes - usedBytes;
    }

    @Override
    public synchronized long usedBytes() {
        return usedBytes;
    }

    @Override
    public synchronized long blockCount() {
        return entries.size();
    }

    @Override
    public synchronized TierStats stats() {
        return counters.snapshot(entries.size(), usedBytes, capacityBytes);
    }

    @Override
    public synchronized void close() {
        closed = true;
        entries.clear();
        usedBytes = 0;
        pinnedBytes = 0;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the DRAM tier is closed");
        }
    }
}
