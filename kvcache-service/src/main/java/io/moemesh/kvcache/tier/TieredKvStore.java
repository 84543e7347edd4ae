package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.ChainObserver;
import io.moemesh.kvcache.policy.EvictionPolicy;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;

/**
 * DRAM over a lower tier (SSD or CSD), exclusive in capacity: a block lives in exactly one tier, so the store holds
 * DRAM + lower bytes of distinct blocks (Mooncake's and LMCache's hierarchy; an inclusive cache would waste the
 * smaller tier on copies).
 *
 * <ul>
 *   <li>{@link #put}: the {@link AdmissionPolicy} may decline (not a put the caller pins next or reads back on a
 *       resume: {@link #put(KvBlock, AccessHint, boolean)}); otherwise into DRAM. DRAM's victims are demoted into
 *       the lower tier synchronously, before they leave DRAM, so a demoted block is visible throughout. When DRAM
 *       is full of pinned blocks the put goes straight to the lower tier.</li>
 *   <li>{@link #get}: DRAM, else the lower tier; a lower-tier hit is promoted (stored in DRAM, then taken out
 *       below), keeping the tiers exclusive. The lower tier keeps its record until the block leaves the store (a
 *       DRAM eviction the lower tier does not take, a {@link #remove}) or is demoted anew ({@link
 *       KvTier#promoteOut}), so a kill -9 while the block is only in DRAM does not lose it.</li>
 *   <li>{@link #restore}: the read of a whole-prefix restore (the service's {@code Get}): as {@link #get}, but a
 *       lower-tier hit is promoted only while DRAM has free room for it; once DRAM is full the block is served
 *       from the lower tier and stays there (its hit recorded there), so a long prefix streaming through DRAM
 *       neither flushes it nor costs a demotion write per block.</li>
 *   <li>{@link #pin} counts nested pins per block across tiers: a pinned block is evicted from neither tier, and a
 *       promotion carries the pin. A pin belongs to the stored block: when the block leaves both tiers without a
 *       {@link #remove} (the SSD tier dropped its record for a bad CRC32C, on a read or during compaction) its pins
 *       are forgotten the next time the store meets its key, so {@link #unpin} answers false and a later put of
 *       the key is a fresh, unpinned block. Each run of pins on a stored block has a generation ({@link
 *       #pinGeneration}), so a caller that records it ({@link PinLedger}) never releases a pin of a later
 *       run (the key stored and pinned again) with {@link #unpin(BlockKey, long)}.</li>
 * </ul>
 *
 * <p>Thread-safe. Every move between tiers (put, promotion, demotion, remove, pin) happens under one lock; a DRAM
 * hit takes only DRAM's monitor and a lower-tier read runs outside the lock (its I/O and CRC check in parallel).
 * Moves always store the block in its new tier before removing it from the old one, so a reader that misses in
 * both tiers only because it raced a move retries once under the lock and finds it.
 */
public final class TieredKvStore implements AutoCloseable {
    private final KvLayout layout;
    private final DramTier dram;
    private final KvTier lower;
    private final AdmissionPolicy admission;
    private final ChainObserver observer;
    private final ReentrantLock lock = new ReentrantLock();
    /**
     * Nested pin counts; guarded by {@link #lock}. May hold the key of a block a tier dropped on its own (a checksum
     * failure), which the store is not told of: {@link #pinsOf} forgets those.
     */
    private final Map<BlockKey, Pins> pins = new HashMap<>();
    /** The last generation given to a run of pins (guarded by {@link #lock}). */
    private long pinGenerations;
    private final LongAdder demotions = new LongAdder();
    private final LongAdder demotionDrops = new LongAdder();
    private final LongAdder promotions = new LongAdder();
    /** Lower-tier hits of {@link #restore} left in the lower tier because DRAM had no free room. */
    private final LongAdder skippedPromotions = new LongAdder();
    private final LongAdder declined = new LongAdder();

    /**
     * The pins held on one stored block: a nested count, and the generation of this run of pins (from the first pin
     * while none was held until the last is released or the block leaves the store), unique in the store.
     */
    private static final class Pins {
        int count;
        final long generation;

        Pins(long generation) {
            this.generation = generation;
        }
    }

    /**
     * @param dramBytes  DRAM budget in bytes (≥ one block)
     * @param dramPolicy DRAM's eviction order (a fresh instance)
     * @param lower      the tier DRAM demotes to (its layout must be {@code layout}); closed with the store
     * @param admission  whether a new block is stored at all
     * @param clock      the time DRAM's block histories record
     */
    public TieredKvStore(KvLayout layout, long dramBytes, EvictionPolicy dramPolicy, KvTier lower,
                         AdmissionPolicy admission, LongSupplier clock) {
        this(layout, dramBytes, dramPolicy, lower, admission, ChainObserver.NONE, clock);
    }

    /**
     * As the constructor without {@code observer}, with a policy that is told each request's chain by
     * {@link #observe}.
     *
     * @param observer told each chain passed to {@link #observe} (a prefix-aware policy; {@link ChainObserver#NONE}
     *                 for none)
     */
    public TieredKvStore(KvLayout layout, long dramBytes, EvictionPolicy dramPolicy, KvTier lower,
                         AdmissionPolicy admission, ChainObserver observer, LongSupplier clock) {
        this.observer = Objects.requireNonNull(observer, "observer");
        this.layout = Objects.requireNonNull(layout, "layout");
        this.lower = Objects.requireNonNull(lower, "lower");
        if (!lower.layout().equals(layout)) {
            throw new IllegalArgumentException("the " + lower.kind() + " tier stores " + lower.layout()
                    + ", the store " + layout);
        }
        this.admission = Objects.requireNonNull(admission, "admission");
        this.dram = new DramTier(layout, dramBytes, dramPolicy, clock, this::demote);
    }

    /**
     * Called by DRAM, under {@link #lock} (every DRAM put is), with a victim that is still in DRAM. A victim the lower
     * tier does not take leaves the store: the record the lower tier kept since its promotion goes too.
     */
    private void demote(KvBlock victim) {
        PutResult r;
        try {
            r = lower.put(victim);
        } catch (RuntimeException e) {
            demotionDrops.increment();
            lower.letGo(victim.key());
            throw e; // DRAM logs it and drops the block
        }
        if (r == PutResult.NO_SPACE) {
            demotionDrops.increment();
            lower.letGo(victim.key());
        } else {
            demotions.increment();
        }
    }

    public KvLayout layout() {
        return layout;
    }

    /**
     * Stores a block (all-or-nothing).
     *
     * @throws IllegalArgumentException when the block's layout is not the store's, or the lower tier could never
     *                                  store it ({@link KvTier#checkStorable}: non-finite values under int8). Why
     *                                  up front: the put lands in DRAM, and the block's demotion would drop it
     *                                  silently after it was acknowledged
     */
    public StoreResult put(KvBlock block, AccessHint hint) {
        return put(block, hint, false);
    }

    /**
     * As {@link #put(KvBlock, AccessHint)}; with {@code unasked} the admission policy is not asked, for a block the
     * caller pins right after it is stored (the gateway's Attend offload, {@code pin_next}) or reads back when its
     * sequence resumes (a swap-out, {@code swap_out}): a policy that learned to decline such blocks (the conversation
     * policy declines chains' last blocks) would otherwise leave the caller a block it can never pin, and its
     * sequence stuck in its own memory, or end a resume's restored run at the declined block, every block after it
     * written for nothing. Capacity still applies (NO_SPACE).
     */
    public StoreResult put(KvBlock block, AccessHint hint, boolean unasked) {
        Tiers.checkBlock(block, layout, Long.MAX_VALUE, "store");
        lower.checkStorable(block);
        lock.lock();
        try {
            Optional<TierKind> where = locate(block.key());
            if (where.isPresent()) {
                return new StoreResult(PutResult.ALREADY_PRESENT, where);
            }
            pins.remove(block.key()); // pins of a dropped block of this key: the new one is not pinned
            if (!unasked && !admission.admit(block.key(), hint)) {
                declined.increment();
                return new StoreResult(PutResult.DECLINED, Optional.empty());
            }
            PutResult r = dram.put(block, hint);
            if (r == PutResult.STORED) {
                return new StoreResult(r, Optional.of(TierKind.DRAM));
            }
            // DRAM is full of pinned blocks: the lower tier is the only room.
            r = lower.put(block, hint);
            return new StoreResult(r, r == PutResult.STORED ? Optional.of(lower.kind()) : Optional.empty());
        } finally {
            lock.unlock();
        }
    }

    /** {@link #put(KvBlock, AccessHint)} without a hint. */
    public StoreResult put(KvBlock block) {
        return put(block, AccessHint.NONE);
    }

    /** The whole block from whichever tier holds it, promoting a lower-tier hit to DRAM; empty when not stored. */
    public Optional<StoredBlock> get(BlockKey key, AccessHint hint) {
        return read(key, hint, true);
    }

    /** {@link #get(BlockKey, AccessHint)} without a hint. */
    public Optional<StoredBlock> get(BlockKey key) {
        return get(key, AccessHint.NONE);
    }

    /**
     * The whole block, as {@link #get}, for a restore that streams a whole prefix out (the service's {@code Get}):
     * a lower-tier hit is promoted only when DRAM has free room for it, never by evicting (and so demoting) another
     * block. Why: with exclusive tiers, promoting every block of a prefix larger than DRAM's free room turns a
     * read-only restore into a read plus a DRAM eviction plus a lower-tier write per block, and pushes out of DRAM
     * the blocks other requests were about to hit, for a prefix that the gateway now holds in its own cache (it is
     * the client's copy that is reused next, not ours). Scan-resistant caches do the same with sequential reads
     * (a one-time scan is not a reason to evict the working set). The lower tier records the hit, so its eviction
     * order still sees the use.
     */
    public Optional<StoredBlock> restore(BlockKey key, AccessHint hint) {
        return read(key, hint, false);
    }

    /** {@link #get} ({@code evictToPromote}) or {@link #restore} (promote only into free room). */
    private Optional<StoredBlock> read(BlockKey key, AccessHint hint, boolean evictToPromote) {
        Optional<KvBlock> hot = dram.get(key, hint);
        if (hot.isPresent()) {
            return Optional.of(new StoredBlock(hot.get(), TierKind.DRAM));
        }
        Optional<KvBlock> cold = lower.get(key, hint);
        if (cold.isPresent()) {
            promote(cold.get(), hint, evictToPromote);
            return Optional.of(new StoredBlock(cold.get(), lower.kind()));
        }
        // Both missed: maybe only because a move ran between the two reads. Under the lock nothing moves.
        lock.lock();
        try {
            if (dram.contains(key)) {
                return dram.get(key, hint).map(b -> new StoredBlock(b, TierKind.DRAM));
            }
            if (lower.contains(key)) {
                Optional<KvBlock> again = lower.get(key, hint);
                again.ifPresent(b -> promote(b, hint, evictToPromote));
                if (again.isEmpty() && !lower.contains(key)) {
                    // The lower tier dropped it just now (a bad CRC32C): its pins go with it. A read that failed
                    // otherwise (EIO, a short read) leaves the block stored and pinned there: its pins stay, or
                    // the tier would hold a pin no unpin could ever release.
                    pins.remove(key);
                }
                return again.map(b -> new StoredBlock(b, lower.kind()));
            }
            pins.remove(key);
            return Optional.empty();
        } finally {
            lock.unlock();
        }
    }

    private void promote(KvBlock block, AccessHint hint, boolean evictToPromote) {
        if (evictToPromote) {
            promote(block, hint);
        } else {
            promoteIfRoom(block, hint);
        }
    }

    private void promoteIfRoom(KvBlock block, AccessHint hint) {
        // Every DRAM put runs under the lock, so the room seen here is the room the put finds.
        if (dram.freeBytes() < block.sizeBytes()) {
            skippedPromotions.increment();
            return;
        }
        lock.lock();
        try {
            if (dram.freeBytes() < block.sizeBytes()) {
                skippedPromotions.increment();
                return;
            }
            promote(block, hint);
        } finally {
            lock.unlock();
        }
    }

    private void promote(KvBlock block, AccessHint hint) {
        lock.lock();
        try {
            BlockKey key = block.key();
            if (dram.contains(key) || !lower.contains(key)) {
                return; // another thread promoted it, or it was removed meanwhile
            }
            if (dram.put(block, hint) == PutResult.STORED) {
                lower.promoteOut(key);
                if (pins.containsKey(key)) {
                    dram.pin(key);
                }
                promotions.increment();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Whether any tier holds the block. */
    public boolean contains(BlockKey key) {
        lock.lock();
        try {
            return locate(key).isPresent();
        } finally {
            lock.unlock();
        }
    }

    /** The tier holding the block, if any; under {@link #lock}. */
    private Optional<TierKind> locate(BlockKey key) {
        if (dram.contains(key)) {
            return Optional.of(TierKind.DRAM);
        }
        return lower.contains(key) ? Optional.of(lower.kind()) : Optional.empty();
    }

    /**
     * Announces a request's whole chain (block 0 first) to the store's policy before the request's blocks are looked
     * up, read or stored; the service calls it on every Lookup but a repeat. Stores and reads nothing: a put that was
     * never announced is still stored (or declined) by what the policy knows of its key.
     *
     * @param arrivalMillis the request's arrival time (ms), negative when unknown
     */
    public void observe(List<BlockKey> chain, long arrivalMillis) {
        observer.observe(chain, arrivalMillis);
    }

    /**
     * The longest leading run of {@code chain} (block 0 first) that is stored in any tier, with the tier of each.
     * Records no access: a lookup is a question, the get that follows is the use.
     */
    public LookupResult lookup(List<BlockKey> chain) {
        List<TierKind> tiers = new ArrayList<>();
        lock.lock();
        try {
            for (BlockKey k : chain) {
                Optional<TierKind> t = locate(k);
                if (t.isEmpty()) {
                    break;
                }
                tiers.add(t.get());
            }
        } finally {
            lock.unlock();
        }
        return new LookupResult(tiers);
    }

    /**
     * Where each block of the longest stored leading run of {@code chain} lies, for a same-host reader of the lower
     * tier's files ({@code Locate}): a lower-tier block as its record's extent, its file leased until
     * {@code leaseUntilNanos} ({@link SsdTier#locate}: the lease's clock is the lower tier's); a DRAM block (or one
     * a tier keeps in no file) as {@link Located#extent()} null, to be fetched with {@link #restore}. Under the lock,
     * so a block moving between the tiers meanwhile is found in one of them. Nothing is promoted.
     *
     * @param chain      consecutive blocks of one chain, block {@code firstBlock} first
     * @param firstBlock the chain position of {@code chain}'s first block (≥ 0): each located block's use is recorded
     *                   at its true position (a caller holding the chain's head locates only the rest)
     */
    public List<Located> locate(List<BlockKey> chain, int firstBlock, long leaseUntilNanos) {
        if (firstBlock < 0 || (long) firstBlock + chain.size() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("firstBlock " + firstBlock + " and " + chain.size() + " blocks: chain "
                    + "positions are in [0, 2^31)");
        }
        List<Located> out = new ArrayList<>();
        lock.lock();
        try {
            for (int i = 0; i < chain.size(); i++) {
                BlockKey k = chain.get(i);
                if (dram.contains(k)) {
                    out.add(new Located(TierKind.DRAM, null));
                    continue;
                }
                Optional<RecordExtent> e = lower.locate(k, AccessHint.atChainPosition(firstBlock + i),
                        leaseUntilNanos);
                if (e.isPresent()) {
                    out.add(new Located(lower.kind(), e.get()));
                } else if (lower.contains(k)) {
                    out.add(new Located(lower.kind(), null));
                } else {
                    break;
                }
            }
        } finally {
            lock.unlock();
        }
        return out;
    }

    /**
     * One block of {@link #locate}'s run.
     *
     * @param tier   the tier holding it
     * @param extent its record in the lower tier's files, or null: read it with {@link #restore} (Get)
     */
    public record Located(TierKind tier, RecordExtent extent) {
    }

    /**
     * Drops the block from whichever tier holds it, with its pins; the lower tier also when DRAM's policy throws
     * (the block is out of DRAM by then): its record, kept since a promotion, must not bring the block back after a
     * restart. @return whether it was stored.
     */
    public boolean remove(BlockKey key) {
        lock.lock();
        try {
            pins.remove(key);
            boolean d;
            try {
                d = dram.remove(key);
            } catch (RuntimeException e) {
                try {
                    lower.remove(key);
                } catch (RuntimeException second) {
                    e.addSuppressed(second);
                }
                throw e;
            }
            return lower.remove(key) || d;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Pins a stored block (nested: each pin needs an unpin): it is evicted from no tier until unpinned.
     *
     * @return whether the block is stored (false: nothing pinned)
     */
    public boolean pin(BlockKey key) {
        return pinGeneration(key) >= 0;
    }

    /**
     * Pins a stored block, as {@link #pin}, and returns the generation of the run of pins it joined: the same for
     * every pin taken while the block held at least one, a new one after a time without pins or once the key was
     * stored anew (its block dropped for a bad CRC32C, its pins with it, and put again). {@link #unpin(BlockKey,
     * long)} of it never releases a pin of another run.
     *
     * @return the generation (≥ 0), or -1 when the block is not stored (nothing pinned)
     */
    public long pinGeneration(BlockKey key) {
        lock.lock();
        try {
            Optional<TierKind> where = locate(key);
            if (where.isEmpty()) {
                pins.remove(key);
                return -1;
            }
            (where.get() == TierKind.DRAM ? dram : lower).pin(key);
            Pins p = pins.computeIfAbsent(key, k -> new Pins(pinGenerations++));
            p.count++;
            return p.generation;
        } finally {
            lock.unlock();
        }
    }

    /** Releases one pin. @return whether the block had one. */
    public boolean unpin(BlockKey key) {
        return unpin(key, -1);
    }

    /**
     * Releases one pin of the run {@code generation} ({@link #pinGeneration}); none when the block's pins now are of
     * another run (its pins of that run died with a dropped copy, or were all released by {@link #unpin(BlockKey)}).
     *
     * @param generation the run's generation, or -1 for whatever run the block's pins are of
     * @return whether a pin was released
     */
    public boolean unpin(BlockKey key, long generation) {
        lock.lock();
        try {
            Pins p = pinsOf(key);
            if (p == null || generation >= 0 && p.generation != generation) {
                return false;
            }
            if (--p.count == 0) {
                pins.remove(key);
                dram.unpin(key);
                lower.unpin(key);
            }
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Whether the block has at least one pin. */
    public boolean isPinned(BlockKey key) {
        lock.lock();
        try {
            return pinsOf(key) != null;
        } finally {
            lock.unlock();
        }
    }

    /**
     * The block's pins, null when it has none; under {@link #lock}. Forgets the pins of a block that is in
     * neither tier: under the lock nothing is between tiers (moves store before they remove), so such a block was
     * dropped by its tier (a checksum failure) and its pins died with it.
     */
    private Pins pinsOf(BlockKey key) {
        Pins p = pins.get(key);
        if (p != null && locate(key).isEmpty()) {
            pins.remove(key);
            return null;
        }
        return p;
    }

    /**
     * Moves every DRAM block down into the lower tier (pins carried along), so that a service that is shutting
     * down keeps them across the restart: the lower tier's files are what a restart rebuilds, DRAM is not. The
     * lower tier makes room by its own policy as for any demotion; a block it cannot take (NO_SPACE, an I/O
     * error) stays in DRAM and is lost with it.
     *
     * @return blocks moved
     */
    public int demoteAll() {
        lock.lock();
        try {
            int moved = 0;
            for (KvBlock b : dram.residentBlocks()) {
                PutResult r;
                try {
                    r = lower.put(b);
                } catch (RuntimeException e) {
                    demotionDrops.increment();
                    continue;
                }
                if (r == PutResult.STORED || r == PutResult.ALREADY_PRESENT) {
                    if (pins.containsKey(b.key())) {
                        lower.pin(b.key());
                    }
                    dram.remove(b.key());
                    demotions.increment();
                    moved++;
                } else {
                    demotionDrops.increment();
                }
            }
            return moved;
        } finally {
            lock.unlock();
        }
    }

    public DramTier dram() {
        return dram;
    }

    /** Lower-tier hits of {@link #restore} served without promotion (DRAM had no free room for them). */
    public long restoredWithoutPromotion() {
        return skippedPromotions.sum();
    }

    public KvTier lower() {
        return lower;
    }

    public StoreStats stats() {
        lock.lock();
        try {
            return new StoreStats(dram.stats(), lower.stats(), demotions.sum(), demotionDrops.sum(),
                    promotions.sum(), declined.sum());
        } finally {
            lock.unlock();
        }
    }

    /**
     * Closes both tiers. DRAM's blocks are not written down: the store is a cache, and a restart rebuilds the lower
     * tier's index from its files (which still hold the records of DRAM blocks promoted from there: those come back).
     */
    @Override
    public void close() {
        lock.lock();
        try {
            dram.close();
            lower.close();
        } finally {
            lock.unlock();
        }
    }
}
