package io.moemesh.model.kv;

import io.moemesh.model.engine.BlockPool;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The prefix cache's blocks (vLLM's BlockPool with prefix caching): a {@link BlockPool} plus the hash → block index
 * of every block whose keys and values are final, the {@link BlockLru} of cached blocks, each hashed block's
 * {@link BlockLineage} and the {@link BlockSink} that gets copies of blocks at risk. It owns the three states of a
 * block and every move between them; {@link PrefixCachingKvCache} owns the sequences (their block tables, what
 * they hashed, their offloads) and decides when a block is held, hashed or let go of.
 * <ul>
 *   <li><b>held</b>: one or more block tables hold it ({@link BlockPool#holders});</li>
 *   <li><b>cached</b>: held by nobody, with a hash: in the LRU, findable until evicted;</li>
 *   <li><b>free</b>: held by nobody, without a hash: on the pool's free list.</li>
 * </ul>
 * Engine thread only; {@link #cachedBlocks}, {@link #freeBlocks} and {@link #importedBlocks} may be read from any
 * thread (metrics).
 */
final class PrefixBlockPool {
    private final BlockPool pool;
    private final ModelFingerprint fingerprint;
    /**
     * Per block: its hash once its keys and values are final, else null. Findable only when {@link #index} names
     * it: a held duplicate (see {@link #register}) carries its hash without being indexed.
     */
    private final BlockHash[] hashOf;
    /** Hash → the one block findable under it (held or cached; every cached block is its hash's). */
    private final Map<BlockHash, Integer> index = new HashMap<>();
    /** Per block with a hash: what it was computed from. */
    private final BlockLineage lineage;
    private final BlockLru lru;
    /**
     * {@link #importChain}'s held ancestors, nearest first: one array for the pool's life, not one per import on the
     * engine thread (a chain has at most one block per pool block).
     */
    private final int[] ancestors;
    private volatile BlockSink sink = BlockSink.NONE;
    private volatile int cachedCount;
    private volatile long imported;

    PrefixBlockPool(BlockPool pool, ModelFingerprint fingerprint) {
        this.pool = pool;
        this.fingerprint = fingerprint;
        this.hashOf = new BlockHash[pool.totalBlocks()];
        this.lineage = new BlockLineage(pool.totalBlocks(), pool.blockTokens());
        this.lru = new BlockLru(pool.totalBlocks());
        this.ancestors = new int[pool.totalBlocks()];
    }

    BlockPool pool() {
        return pool;
    }

    void setSink(BlockSink sink) {
        this.sink = sink == null ? BlockSink.NONE : sink;
    }

    /** The block findable under {@code hash}, or -1. */
    int find(BlockHash hash) {
        Integer b = index.get(hash);
        return b == null ? -1 : b;
    }

    boolean contains(BlockHash hash) {
        return index.containsKey(hash);
    }

    /**
     * The block's hash once its keys and values are final, else null (a block with a hash is never written): also
     * a held duplicate's, which is not findable ({@link #register}).
     */
    BlockHash hashOf(int block) {
        return hashOf[block];
    }

    /** The chain position the block was hashed at (valid only while it has a hash). */
    int position(int block) {
        return lineage.position(block);
    }

    /** One more holder for a block found by its hash: a cached one leaves the LRU, so it is not evicted while held. */
    void hold(int block) {
        if (pool.holders(block) == 0) {
            lru.remove(block);
            cachedCount--;
        }
        pool.hold(block);
    }

    /** Whether {@code blocks} more can be allocated now: free ones plus cached ones that may be evicted. */
    boolean canAllocate(int blocks) {
        return blocks <= pool.freeBlocks() + lru.size();
    }

    /**
     * A block for one holder: a free one, else the least recently used cached one, whose copy is offered to the
     * sink (write-back before it is lost) and whose hash is forgotten (evicted).
     *
     * @throws IllegalStateException when every block is held (callers check {@link #canAllocate} first)
     */
    int allocate() {
        if (pool.freeBlocks() > 0) {
            return pool.take();
        }
        if (lru.size() == 0) {
            throw new IllegalStateException("every KV block is held");
        }
        int b = lru.pollFirst();
        cachedCount--;
        offer(b);
        // A cached block is always its hash's indexed one (letGo frees duplicates), so this removes its own entry.
        index.remove(hashOf[b], b);
        hashOf[b] = null;
        pool.hold(b);
        return b;
    }

    /**
     * One holder lets go of the block: one nobody holds any more becomes cached when it has a hash (its copy
     * offered to the sink: it may be evicted from now on), free otherwise. A duplicate ({@link #register}) is freed
     * (its hash forgotten) while another block is findable under its hash, and becomes that hash's cached block when
     * none is (the other was evicted meanwhile). Callers let go of a chain tail first, so that eviction takes a
     * prefix's end before its start (a chain lookup stops at its first miss).
     */
    void letGo(int block) {
        if (!pool.drop(block)) {
            return;
        }
        BlockHash h = hashOf[block];
        Integer owner = h == null ? null : index.putIfAbsent(h, block);
        if (owner != null && owner != block) {
            // The same keys and values stay findable in the indexed block: this copy is not worth a cache slot.
            hashOf[block] = null;
            h = null;
        }
        if (h != null) {
            lru.addLast(block);
            cachedCount++;
            offer(block);
        } else {
            pool.free(block);
        }
    }

    /**
     * Gives a block whose keys and values are final its {@code hash}, with its lineage: {@code parent} (null for
     * block 0), its tokens ({@code tokens[0, blockTokens)}), tenant and chain position, and makes it findable under
     * it. When another block is findable under that hash already (two sequences computed the same prefix side by
     * side) this one becomes a duplicate: it keeps the hash and lineage (so its sequence can still offload, swap
     * out and write it back by its identity) but is not findable (one block per hash here). vLLM v1 too keeps
     * duplicates rather than switch a running sequence's block table (KVCacheManager: "we currently don't
     * de-duplicate the blocks in the cache", so block tables stay append-only). See {@link #letGo} for where a
     * duplicate goes after. A block that has a hash already keeps it (false).
     *
     * @return whether the block is findable under {@code hash} now
     */
    boolean register(int block, BlockHash hash, BlockHash parent, int[] tokens, String tenant, int position) {
        if (hashOf[block] != null) {
            return false;
        }
        hashOf[block] = hash;
        lineage.remember(block, parent, tokens, tenant, position);
        return index.putIfAbsent(hash, block) == null;
    }

    /** A copy of block {@code block}, which has a hash: its lineage, keys and values. */
    BlockContents copy(int block) {
        return lineage.copy(block, hashOf[block], pool);
    }

    /** Hands the sink a copy of block {@code b} (which has a hash) if it wants one. */
    private void offer(int b) {
        BlockSink to = sink;
        if (to != BlockSink.NONE && to.wants(hashOf[b])) {
            to.accept(copy(b));
        }
    }

    /**
     * Makes blocks of one chain another tier returned cached blocks here (see {@link
     * PrefixCachingKvCache#importBlocks} for the rules): validates all of them first, then holds every block of the
     * chain, present or written, and the present blocks it continues (its parent back to block 0, as far as they are
     * findable) while room is made, so eviction never takes one of them: an evicted ancestor would leave the imported
     * blocks unreachable (a lookup stops at its first miss). Lets go of them tail first without offering them to the
     * sink (they came from the tier, or were offered when they became cached).
     *
     * @return leading blocks of {@code blocks} findable here afterwards
     */
    int importChain(List<BlockContents> blocks) {
        if (blocks.isEmpty()) {
            return 0;
        }
        BlockHash expectedParent = blocks.getFirst().parent();
        if (expectedParent != null && !index.containsKey(expectedParent)) {
            throw new IllegalArgumentException("block " + blocks.getFirst().hash() + " continues " + expectedParent
                    + ", which is not in the cache");
        }
        for (BlockContents c : blocks) {
            if (!Objects.equals(c.parent(), expectedParent)) {
                throw new IllegalArgumentException("block " + c.hash() + " does not continue the chain (parent "
                        + c.parent() + ", expected " + expectedParent + ")");
            }
            c.check(pool.blockTokens(), pool.layers(), pool.blockFloats(), fingerprint);
            expectedParent = c.hash();
        }
        // Nearest ancestor first; bounded by the pool, though a chain's positions fall to 0 anyway.
        int a = 0;
        for (BlockHash h = blocks.getFirst().parent(); h != null && a < ancestors.length; ) {
            Integer b = index.get(h);
            if (b == null) {
                break;
            }
            hold(b);
            ancestors[a++] = b;
            h = lineage.parent(b);
        }
        int[] held = new int[blocks.size()];
        int n = 0;
        for (BlockContents c : blocks) {
            int b = find(c.hash());
            if (b >= 0) {
                hold(b);
            } else {
                if (!canAllocate(1)) {
                    break;
                }
                b = allocate();
                pool.write(b, c.keys(), c.values());
                register(b, c.hash(), c.parent(), c.tokens(), c.tenant(), c.chainPosition());
                imported++;
            }
            held[n++] = b;
        }
        for (int i = n - 1; i >= 0; i--) {
            release(held[i]);
        }
        for (int i = 0; i < a; i++) {
            release(ancestors[i]);
        }
        return n;
    }

    /** Lets go of a block {@link #importChain} held: cached again when nobody else holds it, not offered. */
    private void release(int block) {
        if (pool.drop(block)) {
            lru.addLast(block);
            cachedCount++;
        }
    }

    /** Blocks {@link #importChain} wrote into the pool (present ones not counted). */
    long importedBlocks() {
        return imported;
    }

    int freeBlocks() {
        return pool.freeBlocks();
    }

    /** Blocks nobody holds that keep a findable prefix until evicted (the LRU). */
    int cachedBlocks() {
        return cachedCount;
    }

    /** Blocks held by at least one block table (a shared block counts once). */
    int usedBlocks() {
        return pool.totalBlocks() - pool.freeBlocks() - cachedCount;
    }

    /**
     * Checks every block's bookkeeping against the others (tests), given how many block tables hold each block:
     * each block is exactly one of held (its count equals {@code tables}), cached (in the LRU, its hash indexed to
     * it) or free (without a hash); a hash not indexed to its block only on a held block (a duplicate); every
     * indexed hash names a block carrying it; the counters match. Returns the number of held blocks.
     */
    int audit(int[] tables) {
        int held = pool.audit(tables);
        for (int b = 0; b < pool.totalBlocks(); b++) {
            boolean isHeld = pool.holders(b) > 0;
            boolean isFree = pool.isFree(b);
            int states = (isHeld ? 1 : 0) + (lru.contains(b) ? 1 : 0) + (isFree ? 1 : 0);
            if (states != 1) {
                throw new IllegalStateException("block " + b + " is in " + states + " states (held "
                        + pool.holders(b) + ", cached " + lru.contains(b) + ", free " + isFree + ")");
            }
            if (lru.contains(b) && hashOf[b] == null || isFree && hashOf[b] != null) {
                throw new IllegalStateException("block " + b + ": cached blocks need a hash, free ones have none");
            }
            if (hashOf[b] != null && !isHeld && !Integer.valueOf(b).equals(index.get(hashOf[b]))) {
                throw new IllegalStateException("block " + b + "'s hash is not indexed to it, and nobody holds it");
            }
        }
        for (Map.Entry<BlockHash, Integer> e : index.entrySet()) {
            if (!e.getKey().equals(hashOf[e.getValue()])) {
                throw new IllegalStateException("hash " + e.getKey() + " names block " + e.getValue() + ", which has "
                        + hashOf[e.getValue()]);
            }
        }
        if (lru.size() != cachedCount || held != usedBlocks()) {
            throw new IllegalStateException("counters: cached " + cachedCount + " vs LRU " + lru.size() + ", used "
                    + usedBlocks() + " vs held " + held);
        }
        return held;
    }

    /** Cached blocks, least recently used first (tests of the eviction order). */
    int[] lruOrder() {
        return lru.toArray();
    }
}
