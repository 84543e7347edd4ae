package io.moemesh.model.kv;

import io.moemesh.model.engine.BlockPool;
import io.moemesh.model.engine.KvCache;
import io.moemesh.model.engine.PrefixSource;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * The gateway's paged KV cache with automatic prefix caching, as vLLM does it (KVCacheManager / BlockPool): a
 * fixed pool of blocks, a block table per sequence, and every full block that a completed step made final keyed
 * by its chained {@link BlockHash} (parent, tokens, {@link ModelFingerprint}, tenant salt) in a hash → block map.
 * A new sequence's longest cached prefix ({@link #acquirePrefix}) becomes part of its block table, so the
 * scheduler skips computing it.
 *
 * <p>Every block is in exactly one of three states:
 * <ul>
 *   <li><b>held</b>: referenced by one or more sequences' block tables (a reference count per block; running
 *       sequences with a common prefix share its blocks);</li>
 *   <li><b>cached</b>: held by nobody, but findable by its hash: the least recently released first in an LRU;</li>
 *   <li><b>free</b>: held by nobody and without a hash (never filled, or filled by a step that did not complete).</li>
 * </ul>
 * {@link #release} returns a sequence's blocks: those with a hash become cached, the others free, tail blocks
 * first so that eviction takes a prefix's end before its start (a chain lookup stops at its first miss).
 * {@link #ensureCapacity} takes free blocks and only when none is left evicts the least recently used cached
 * block (its hash is forgotten).
 *
 * <p>Rules that keep every sequence's keys and values its own:
 * <ul>
 *   <li>A block becomes findable only in {@link #stepCompleted}, when its keys and values are final; a step that
 *       failed never completes, so its blocks are released without a hash and are never found.</li>
 *   <li>A block with a hash is never written. The engine writes only positions ≥ a step's start, and a prefix is
 *       handed out only in full blocks before the last token: the last token is always computed, for its logits.
 *       When a whole prompt is cached (its length a multiple of the block size), reuse therefore stops one block
 *       earlier: handing out the block of the last token would make the engine write that position into a shared
 *       block, and the kernels' result for a position can differ in its last bits with the batch it is computed in
 *       (another tile shape adds its products in another order), so the rewrite could change keys and values
 *       another sequence is reading. {@link #stepStarted} refuses a step that would write into a block with a
 *       hash.</li>
 *   <li>Tenants never share: the tenant's name salts every block hash.</li>
 * </ul>
 *
 * <p>Another tier (the kvcache-service) plugs in at two points: a {@link BlockSink} gets a copy of every full
 * block it {@linkplain BlockSink#wants wants} when the block becomes cached (its last holder released it) and when
 * it is evicted (write-back), and {@link #importBlocks} makes blocks fetched from the tier cached blocks here, so
 * the next {@link #acquirePrefix} finds them like any other. Each block with a hash keeps its parent hash, tokens,
 * tenant and chain position for that. A {@link BlockOffload} takes a long sequence's oldest full blocks while it
 * runs ({@link #setBlockOffload}): the sequence then reports them as its {@link #remotePrefix}.
 *
 * <p>The parts, each its own class: the blocks, their states, hash index, lineage and write-back are a {@link
 * PrefixBlockPool} over the engine's {@link BlockPool} (the same physical pool {@link
 * io.moemesh.model.engine.PagedKvCache} uses); each sequence's {@link io.moemesh.model.engine.BlockTable} and what
 * it hashed so far are a {@link CachedSequence}; offloads are a {@link PrefixOffloader}. This class is the
 * {@link KvCache} and {@link PrefixSource} over them: it decides when a block is held, hashed or let go of.
 *
 * <p>With {@code enabled} false it is a plain paged cache: {@link #acquirePrefix} returns 0 and no block ever gets
 * a hash. Engine thread only, like every {@link KvCache} (no locks); the counters ({@link #freeBlocks},
 * {@link #cachedBlocks}, {@link #usedBlocks}, {@link #lookedUpTokens}, {@link #servedTokens}) may be read from any
 * thread (metrics), and are exact between steps.
 */
public final class PrefixCachingKvCache implements KvCache, PrefixSource {
    public static final int DEFAULT_BLOCK_TOKENS = 16;

    private final int blockTokens;
    private final ModelFingerprint fingerprint;
    private final boolean enabled;
    private final PrefixBlockPool blocks;
    private final PrefixOffloader offloader;
    private final Map<Long, CachedSequence> sequences = new HashMap<>();
    private volatile long lookedUp;
    private volatile long served;

    /**
     * @param fingerprint the served model's, part of every block hash
     * @param enabled     false: a plain paged cache (no prefix is ever looked up or registered)
     */
    public PrefixCachingKvCache(int layers, int kvDim, int blockTokens, int numBlocks, ModelFingerprint fingerprint,
                                boolean enabled) {
        this.blocks = new PrefixBlockPool(new BlockPool(layers, kvDim, blockTokens, numBlocks), fingerprint);
        this.offloader = new PrefixOffloader(blocks);
        this.blockTokens = blockTokens;
        this.fingerprint = fingerprint;
        this.enabled = enabled;
    }

    /** A cache of 16-token blocks able to hold {@code tokens} positions in total. */
    public static PrefixCachingKvCache forTokens(int layers, int kvDim, int tokens, ModelFingerprint fingerprint,
                                                 boolean enabled) {
        return new PrefixCachingKvCache(layers, kvDim, DEFAULT_BLOCK_TOKENS,
                Math.max(1, (tokens + DEFAULT_BLOCK_TOKENS - 1) / DEFAULT_BLOCK_TOKENS), fingerprint, enabled);
    }

    public boolean enabled() {
        return enabled;
    }

    @Override
    public int blockTokens() {
        return blockTokens;
    }

    /**
     * Looks the context's full blocks up, block 0 first, until the first miss, and puts the hits at the start of
     * the sequence's block table (each one more reference; a cached block leaves the LRU). At most
     * {@code (tokens.length - 1) / B} blocks: the block of the last token is always computed (see the class
     * comment for why a whole cached prompt stops one block early). And at most one block fewer than the pool: a
     * context longer than the pool (with a {@link BlockOffload}) that found the whole pool cached would hold every
     * block and have none for its next position, and only a completed step starts the offload that frees some.
     */
    @Override
    public int acquirePrefix(long seqId, int[] tokens, String tenant) {
        if (tenant == null) {
            throw new IllegalArgumentException("sequence " + seqId + ": tenant must be set (\"\" for none)");
        }
        CachedSequence s = sequences.get(seqId);
        if (s != null && (s.table.size() > 0 || s.remote > 0)) {
            throw new IllegalStateException("sequence " + seqId + " already holds " + s.table.size()
                    + " KV blocks: release it before admitting it again");
        }
        if (!enabled) {
            return 0;
        }
        s = new CachedSequence(blockTokens, tenant);
        sequences.put(seqId, s);
        int max = Math.min((tokens.length - 1) / blockTokens, totalBlocks() - 1);
        int hits = 0;
        BlockHash parent = null;
        while (hits < max) {
            BlockHash h = BlockHash.of(parent, tokens, hits * blockTokens, blockTokens, fingerprint, tenant);
            int b = blocks.find(h);
            if (b < 0) {
                break;
            }
            blocks.hold(b);
            s.table.add(b);
            parent = h;
            hits++;
        }
        s.length = hits * blockTokens;
        s.last = parent;
        s.pendingLookedUp = tokens.length;
        s.pendingServed = hits * blockTokens;
        return hits * blockTokens;
    }

    /**
     * Lets go of the blocks of a completed offload first (a step boundary), then reserves blocks: free ones, and
     * only when none is left the least recently used cached ones (evicted).
     */
    @Override
    public boolean ensureCapacity(long seqId, int length) {
        CachedSequence s = sequences.get(seqId);
        if (s != null) {
            offloader.apply(seqId, s);
        }
        int need = (length + blockTokens - 1) / blockTokens - (s == null ? 0 : s.remote);
        int have = s == null ? 0 : s.table.size();
        if (need <= have) {
            return true;
        }
        if (!blocks.canAllocate(need - have)) {
            return false;
        }
        if (s == null) {
            s = new CachedSequence(blockTokens, null);
            sequences.put(seqId, s);
        }
        for (int i = have; i < need; i++) {
            s.table.add(blocks.allocate());
        }
        return true;
    }

    @Override
    public int[] blockTable(long seqId) {
        CachedSequence s = sequences.get(seqId);
        if (s == null || s.table.size() == 0) {
            throw new IllegalStateException("sequence " + seqId + " has no KV blocks");
        }
        return s.table.entries();
    }

    /** Blocks the sequence holds remotely, in positions (0 without an offload). */
    @Override
    public int remotePrefix(long seqId) {
        CachedSequence s = sequences.get(seqId);
        return s == null ? 0 : s.remote * blockTokens;
    }

    @Override
    public float[] keys(int layer) {
        return blocks.pool().keys(layer);
    }

    @Override
    public float[] values(int layer) {
        return blocks.pool().values(layer);
    }

    /**
     * Refuses (before anything is computed) a step that would write into a block with a hash; counts the lookups
     * of sequences whose first step this is.
     */
    @Override
    public void stepStarted(StepContext step) {
        if (!enabled) {
            return;
        }
        for (SequenceStep st : step.sequences()) {
            CachedSequence s = sequences.get(st.seqId());
            if (s == null) {
                continue;
            }
            if (s.pendingLookedUp > 0) {
                lookedUp += s.pendingLookedUp;
                served += s.pendingServed;
                s.pendingLookedUp = 0;
                s.pendingServed = 0;
            }
            int to = Math.min(s.remote + s.table.size(), (st.endPos() - 1) / blockTokens + 1);
            for (int i = Math.max(s.remote, st.startPos() / blockTokens); i < to; i++) {
                if (blocks.hashOf(s.table.get(i - s.remote)) != null) {
                    throw new IllegalStateException("sequence " + st.seqId() + " would write positions ["
                            + st.startPos() + ", " + st.endPos() + ") into its block " + i
                            + ", which holds a cached prefix other sequences may read");
                }
            }
        }
    }

    /**
     * The rows' keys and values are final: every block they filled gets its hash and becomes findable (unless
     * another block already is under that hash: two sequences computed the same prefix side by side, and this one
     * is a duplicate that keeps its hash without being findable, {@link PrefixBlockPool#register}). Then the
     * sequence's offload may start.
     */
    @Override
    public void stepCompleted(StepContext step) {
        if (!enabled) {
            return;
        }
        for (SequenceStep st : step.sequences()) {
            CachedSequence s = sequences.get(st.seqId());
            if (s == null || !s.hashable) {
                continue;
            }
            if (s.tenant == null) {
                s.tenant = st.tenant();
            }
            if (st.startPos() != s.length) {
                // Not where the last step ended: the tokens of the positions between are unknown here, so this
                // sequence's later blocks are never registered (the scheduler never steps a sequence this way).
                s.hashable = false;
                continue;
            }
            for (int token : st.tokens()) {
                s.partial[s.length % blockTokens] = token;
                s.length++;
                if (s.length % blockTokens == 0) {
                    BlockHash h = BlockHash.of(s.last, s.partial, 0, blockTokens, fingerprint, s.tenant);
                    int i = s.length / blockTokens - 1;
                    blocks.register(s.table.get(i - s.remote), h, s.last, s.partial, s.tenant, i);
                    s.last = h;
                }
            }
            offloader.stepCompleted(st.seqId(), s);
        }
    }

    /**
     * Drops the sequence's references, last block first: a block nobody holds any more becomes cached when it has
     * a hash, free otherwise. Unknown ids are ignored (a second release of the same sequence is a no-op).
     */
    @Override
    public void release(long seqId) {
        CachedSequence s = sequences.remove(seqId);
        if (s == null) {
            return;
        }
        offloader.released(seqId, s);
        for (int i = s.table.size() - 1; i >= 0; i--) {
            blocks.letGo(s.table.get(i));
        }
    }

    /**
     * Sets where copies of blocks at risk go (write-back); {@link BlockSink#NONE} by default. Set it before the
     * engine runs (or on the engine thread).
     */
    public void setBlockSink(BlockSink sink) {
        blocks.setSink(sink);
    }

    /**
     * Sets where long sequences' oldest blocks go ({@link BlockOffload#NONE}, the default, keeps them here). After
     * each completed step of a sequence, when the offload's {@link BlockOffload#remoteBlocks} wants more of its
     * blocks remote than are and none is in flight, those blocks go to {@link BlockOffload#offload}: only full blocks
     * with a hash, block 0 first, stopping at one without or one that is another chain's (a prefix computed twice
     * side by side gives its second copy the hash too); copied only when the offload {@linkplain
     * BlockOffload#needsCopy needs a copy}, and no more copies than its {@linkplain BlockOffload#copyRoom room} (the
     * rest stays local for now; a sequence that could start nothing waits for that room, {@link #offloadPending},
     * while the offload {@linkplain BlockOffload#awaitRoom says it waits}; after an {@code AGAIN} every block is
     * copied).
     * Once that completes with {@link BlockOffload.Outcome#PINNED}, at the sequence's next {@link #ensureCapacity} (a
     * step boundary), the sequence lets go of them as {@link #release} does (a block other sequences share stays held
     * by them; one nobody holds becomes cached, reclaimable, still findable by its hash) and reports them as its
     * {@link #remotePrefix}. A failed offload leaves the sequence local for the rest of its life. Engine thread only;
     * set it before the engine runs.
     */
    public void setBlockOffload(BlockOffload offload) {
        if (offload != BlockOffload.NONE && !enabled) {
            throw new IllegalArgumentException("an offload needs prefix caching (blocks are offloaded by their hash)");
        }
        offloader.set(offload);
    }

    /**
     * Copies of the sequence's blocks that have a hash and that {@code wanted} accepts, block 0 first (a swap-out
     * saves them before the sequence releases them).
     */
    public List<BlockContents> copyHeldBlocks(long seqId, Predicate<BlockHash> wanted) {
        CachedSequence s = sequences.get(seqId);
        List<BlockContents> out = new ArrayList<>();
        if (s == null) {
            return out;
        }
        for (int i = 0; i < s.table.size(); i++) {
            int b = s.table.get(i);
            BlockHash h = blocks.hashOf(b);
            if (h == null || blocks.position(b) != s.remote + i) {
                break;
            }
            if (wanted.test(h)) {
                out.add(blocks.copy(b));
            }
        }
        return out;
    }

    /**
     * The hashes of the first {@code maxBlocks} full blocks of {@code tokens} (fewer when the context has fewer),
     * as {@link #acquirePrefix} computes them.
     */
    public List<BlockHash> prefixChain(int[] tokens, String tenant, int maxBlocks) {
        int n = Math.min(maxBlocks, tokens.length / blockTokens);
        List<BlockHash> chain = new ArrayList<>(n);
        BlockHash parent = null;
        for (int i = 0; i < n; i++) {
            parent = BlockHash.of(parent, tokens, i * blockTokens, blockTokens, fingerprint, tenant);
            chain.add(parent);
        }
        return chain;
    }

    /** How many leading hashes of {@code chain} are findable here now (held or cached). */
    public int presentBlocks(List<BlockHash> chain) {
        if (!enabled) {
            return 0;
        }
        int n = 0;
        while (n < chain.size() && blocks.contains(chain.get(n))) {
            n++;
        }
        return n;
    }

    /**
     * Makes blocks of one chain that another tier returned findable here as cached blocks, as if a sequence had
     * computed and released them. The chain must start at block 0 or continue a block present here; each block's
     * hash is recomputed from its parent, tokens, tenant and the model fingerprint and must match, and its arrays
     * must have this cache's shape, else {@link IllegalArgumentException} and nothing is imported. Blocks already
     * present are kept as they are (equal hashes, equal keys and values). Room comes from free blocks, then by
     * evicting the least recently used cached blocks (never one of this chain); when the pool is full of held
     * blocks the import stops early. The chain's tail goes into the LRU first, so eviction takes its end before its
     * start. Engine thread only.
     *
     * @return leading blocks of {@code blocks} findable here afterwards
     */
    public int importBlocks(List<BlockContents> blocks) {
        return enabled ? this.blocks.importChain(blocks) : 0;
    }

    /** Blocks {@link #importBlocks} wrote into the pool (present ones not counted). */
    public long importedBlocks() {
        return blocks.importedBlocks();
    }

    /**
     * The pool's positions, unless the {@link BlockOffload} moves blocks out of a sequence that fills the pool
     * ({@link BlockOffload#remoteBlocks} of the pool's positions is positive): then no bound. An offload whose policy
     * never fires within the pool (a threshold above it, more local blocks than it has) leaves the bound where it is.
     */
    @Override
    public int maxSequencePositions() {
        return offloader.offloadsWithin(totalBlocks()) ? Integer.MAX_VALUE : poolPositions();
    }

    /**
     * Whether {@code offload} would move blocks out of a sequence that fills this pool: with it set, the cache lifts
     * its length bound ({@link #maxSequencePositions}); without, it would never offload anything a sequence needs to
     * go past the pool. For a caller that refuses such an offload before setting it.
     */
    public boolean offloadsWhenFull(BlockOffload offload) {
        return PrefixOffloader.offloadsWithin(offload, totalBlocks(), blockTokens());
    }

    /**
     * Whether an offload of the sequence's blocks is in flight, or waits for the offload's room for copies: once it
     * lands the pool has more room for it.
     */
    @Override
    public boolean offloadPending(long seqId) {
        CachedSequence s = sequences.get(seqId);
        return s != null && offloader.pending(s);
    }

    @Override
    public int poolPositions() {
        return (int) Math.min(Integer.MAX_VALUE, (long) totalBlocks() * blockTokens());
    }

    public int totalBlocks() {
        return blocks.pool().totalBlocks();
    }

    /** Blocks nobody holds and without a hash. */
    public int freeBlocks() {
        return blocks.freeBlocks();
    }

    /** Blocks nobody holds that keep a findable prefix until evicted (the LRU). */
    public int cachedBlocks() {
        return blocks.cachedBlocks();
    }

    /** Blocks held by at least one sequence (a shared block counts once). */
    public int usedBlocks() {
        return blocks.usedBlocks();
    }

    /** Blocks of the sequences here that a {@link BlockOffload} holds instead (their remote prefixes, in blocks). */
    public int remoteBlocks() {
        return offloader.remoteBlocks();
    }

    /**
     * Context tokens looked up by {@link #acquirePrefix} for admissions that ran (first admissions, and resumes after
     * a preemption): counted when the sequence's first step starts, so an admission that found no room for its
     * first chunk and is tried again later counts once.
     */
    public long lookedUpTokens() {
        return lookedUp;
    }

    /** Of {@link #lookedUpTokens}, those served from cached blocks instead of computed. */
    public long servedTokens() {
        return served;
    }

    /**
     * Checks every block's bookkeeping against the block tables (tests): see {@link PrefixBlockPool#audit}. Returns
     * the number of held blocks, counted from the tables.
     */
    int audit() {
        int[] tables = new int[totalBlocks()];
        for (CachedSequence s : sequences.values()) {
            for (int i = 0; i < s.table.size(); i++) {
                tables[s.table.get(i)]++;
            }
        }
        return blocks.audit(tables);
    }

    /** Cached blocks, least recently used first (tests of the eviction order). */
    int[] lruOrder() {
        return blocks.lruOrder();
    }
}
