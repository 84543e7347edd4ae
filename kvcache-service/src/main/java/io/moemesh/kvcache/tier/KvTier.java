package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.AccessHint;
import java.util.Optional;

/**
 * One storage tier of KV blocks of one model and {@link KvLayout}. Every implementation is thread-safe.
 *
 * <p>Rules every tier keeps (the "a failed or partial store is never returned"):
 * <ul>
 *   <li>{@link #put} is all-or-nothing: a block becomes visible to {@link #get} and {@link #contains} only once it
 *       is stored completely; a put that throws or returns anything but {@link PutResult#STORED} changed
 *       nothing.</li>
 *   <li>{@link #get} returns a whole block whose bytes are exactly what was put, or empty: never a partial block,
 *       never bytes that failed a check (the SSD tier verifies CRC32C on every read and drops a bad record).</li>
 *   <li>A pinned block is never evicted (it may still be {@link #remove}d explicitly).</li>
 *   <li>Bad input (a block of another layout, a null) is an {@link IllegalArgumentException} naming what is wrong,
 *       and leaves the tier unchanged.</li>
 * </ul>
 */
public interface KvTier extends AutoCloseable {
    /** Which tier this is. */
    TierKind kind();

    /** The layout every block of this tier has. */
    KvLayout layout();

    /**
     * Stores the block (all-or-nothing), evicting unpinned blocks by the tier's policy if it needs room.
     *
     * @return {@link PutResult#STORED}, {@link PutResult#ALREADY_PRESENT} (nothing written), or
     *         {@link PutResult#NO_SPACE} when pinned blocks leave no room
     * @throws IllegalArgumentException when the block's layout is not the tier's, or the block alone exceeds the
     *                                  tier's capacity
     */
    PutResult put(KvBlock block, AccessHint hint);

    /** {@link #put(KvBlock, AccessHint)} without a hint. */
    default PutResult put(KvBlock block) {
        return put(block, AccessHint.NONE);
    }

    /**
     * Refuses a block this tier could never store whatever its room, e.g. non-finite values under an int8 encoding
     * ({@link PayloadEncoding#checkStorable}). A store asks before it keeps the block in a tier above this one: a
     * block accepted there that this tier refuses would be dropped silently when demoted. Nothing by default.
     *
     * @throws IllegalArgumentException naming the value this tier cannot store
     */
    default void checkStorable(KvBlock block) {
    }

    /** The whole block, or empty when it is not stored (or failed its check and was dropped). Counts a hit/miss. */
    Optional<KvBlock> get(BlockKey key, AccessHint hint);

    /** {@link #get(BlockKey, AccessHint)} without a hint. */
    default Optional<KvBlock> get(BlockKey key) {
        return get(key, AccessHint.NONE);
    }

    /**
     * Where the block's bytes lie in a file this tier keeps (the SSD tier's record, {@link SsdTier#locate}), its
     * file leased until {@code leaseUntilNanos} (the tier's clock); empty when the tier keeps no such file for it
     * (not stored, or a tier that is not file-backed: the default).
     */
    default Optional<RecordExtent> locate(BlockKey key, AccessHint hint, long leaseUntilNanos) {
        return Optional.empty();
    }

    /** Whether the block is stored (no hit/miss counted, no access recorded). */
    boolean contains(BlockKey key);

    /** Drops the block (pinned or not). @return whether it was stored. */
    boolean remove(BlockKey key);

    /**
     * Takes the block out of this tier because the tier above now holds it (a {@link TieredKvStore} promotion): for
     * lookups and capacity as {@link #remove}, but a file-backed tier keeps the block's record where a restart finds
     * it (the SSD tier writes no tombstone), so a kill -9 while the block is only in the tier above does not lose it.
     * The record is let go of when the block leaves the store ({@link #letGo}, {@link #remove}) or a put of the
     * block writes a newer one (its demotion). {@link #remove} by default.
     *
     * @return whether it was stored
     */
    default boolean promoteOut(BlockKey key) {
        return remove(key);
    }

    /**
     * The block {@link #promoteOut} took out left the store for good (the tier above dropped it without a demotion):
     * the record kept for it is let go of. Nothing when none is kept (nothing by default).
     */
    default void letGo(BlockKey key) {
    }

    /**
     * Marks a stored block as never to be evicted until {@link #unpin}. Pins do not nest in a tier (the
     * {@link TieredKvStore} counts them).
     *
     * @return whether the block is stored (false: nothing pinned)
     */
    boolean pin(BlockKey key);

    /** Lets the block be evicted again. @return whether it was pinned. */
    boolean unpin(BlockKey key);

    /** Whether the block is stored and pinned. */
    boolean isPinned(BlockKey key);

    /** The byte budget. */
    long capacityBytes();

    /** Bytes the resident blocks occupy (≤ {@link #capacityBytes()}). */
    long usedBytes();

    /** Blocks resident now. */
    long blockCount();

    /** A snapshot of the counters. */
    TierStats stats();

    /** Releases files and threads; the tier is unusable afterwards. */
    @Override
    void close();
}
