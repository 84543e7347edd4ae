package io.moemesh.kvcache.policy;

import io.moemesh.kvcache.block.BlockKey;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.Predicate;

/**
 * A prefix- and conversation-aware eviction and admission policy for multi-turn chat traffic, shared by the tiers of
 * one {@code TieredKvStore}: it is the store's {@link AdmissionPolicy}, and {@link #newTierPolicy()} gives each tier
 * an {@link EvictionPolicy} view with one common order.
 *
 * <p>Why: only the longest cached <em>prefix</em> of a request counts, and in a chat trace almost all reuse is a
 * conversation's next turn extending the previous turn's chain. Whether a conversation goes on is what matters,
 * and it is learnable online: on the Mooncake conversation trace a first turn is followed by another in 31% of
 * cases, a second in 42%, a fourth in 59%, an eighth in 80%; and a block many requests used (a shared document,
 * a long conversation's head) is likely used again. So the blocks of a request get the key
 * {@code clock + strength · capacity · (ln(p(turn) / p(first turn)) + ln(uses))}, where {@code p(t)} is the
 * fraction of the requests of turn {@code t} (and, for a later turn, of its think-time class: the time since the
 * turn it extends, see {@link #THINK_BOUNDS_MS}) seen so far that got a next turn within {@link #HORIZON}
 * capacities of block touches (smoothed towards the turn's Laplace-smoothed rate; a request's turn is one
 * more than that of the request that last touched the deepest block of its chain that the policy remembers, if
 * that block is past position 0), {@code uses} the requests that touched the block, and the clock counts block
 * touches (the store's recency), the same for the whole request.
 * The lowest key goes first, ties the deepest position first ({@link PrefixPriority}): a chain loses its tail
 * before its head. A touch never lowers a key (the clock and the uses grow; the turn term keeps its highest
 * value), so a shared head always outranks the chains below it.
 *
 * <p>The strength that wins depends on the capacity (a small cache should hold long conversations for long, a large
 * one is already near LRU's best), so it is chosen online: keys-only {@link ShadowCache}s replay the same requests
 * at each candidate strength, and every request uses the strength whose shadow had the most (decayed) prefix hits
 * so far; when the choice changes, the tiers re-sort their blocks under the new strength (keys are kept as clock and
 * turn term, so the order stays one consistent order: mixing keys of two strengths cost 2 points of hit rate on
 * Mooncake at 2% capacity). The chain's last block is declined when the policy has learned that last blocks are hardly ever reused
 * (their tokens end mid-block, and the next turn's extra tokens change that block's hash).
 *
 * <p>Online: everything it decides for a request depends only on the requests before it and the request's own
 * arrival time ({@link #observe} is called with each request's chain before its blocks are looked up and stored). Its metadata (which request last
 * touched a block, its uses, the turn counts) is bounded by {@code 256 · capacity} blocks (at least 65,536, at
 * most {@link #META_MAX}: a service's heap), the least recently touched forgotten first.
 *
 * <p>Thread-safe: the tiers call their views under their own locks (a DRAM hit holds only DRAM's monitor), so the
 * state the views share is guarded by this object's monitor; no tier lock is ever taken while it is held.
 */
public final class ConversationPolicy implements AdmissionPolicy, ChainObserver {
    /** Candidate bonus strengths, in units of the capacity (0 is LRU with tail-first ties). */
    static final double[] STRENGTHS = {0, 3, 10, 30, 100};
    /** Per request, shadow scores decay by this factor: about the last 2,000 requests count. */
    static final double SCORE_DECAY = 1 - 1.0 / 2000;
    /** Turns from this one on share one continuation estimate. */
    static final int TURN_CLASSES = 9;
    /**
     * Upper bounds (ms) of the think-time classes of a later turn (the time since the turn it extends); a later turn
     * above the last bound is in the last class, a first turn or one without arrival times in class 0. Fitted to the
     * Mooncake conversation trace (its think-time quartiles are 66, 123 and 264 s): a conversation that came back
     * quickly once tends to come back quickly again.
     */
    static final long[] THINK_BOUNDS_MS = {66_000, 200_000};
    static final int THINK_CLASSES = THINK_BOUNDS_MS.length + 2;
    /** Pseudo-requests pulling a think-time class's estimate towards its turn's (sparse classes stay near it). */
    static final double CLASS_PRIOR = 20;
    /**
     * A next turn counts as a continuation only if it comes within this many capacities of block touches: a turn
     * that returns after its chain must have been evicted at this capacity is no reason to keep chains like it
     * (4 fitted on the Mooncake conversation trace: 2, 4, 8, 16 gave 0.1486, 0.1499, 0.1472, 0.1482 at 2%).
     */
    static final double HORIZON = 4;
    /**
     * Last blocks are declined once at least this many were seen and they were reused less than a quarter as often
     * as other new blocks.
     */
    static final int LAST_BLOCK_EVIDENCE = 100;
    /** Declined last blocks remembered for requests whose puts are still to come (concurrent requests). */
    static final int DECLINED_LIMIT = 4096;
    /**
     * Most blocks whose metadata is remembered, whatever the capacity (about 100-200 bytes each: ~200 MB at most); the
     * Mooncake conversation trace has 182,790 distinct blocks, so the replay never reaches it.
     */
    static final int META_MAX = 1 << 20;

    private final int capacityBlocks;
    private final int metaLimit;
    private final Map<BlockKey, Meta> meta;
    private final ShadowCache[] shadows;
    private final long[] turnSeen = new long[TURN_CLASSES];
    private final long[] turnContinued = new long[TURN_CLASSES];
    private final long[] classSeen = new long[TURN_CLASSES * THINK_CLASSES];
    private final long[] classContinued = new long[TURN_CLASSES * THINK_CLASSES];
    private long lastCreated;
    private long lastReused;
    private long otherCreated;
    private long otherReused;
    /** Block touches so far (the policy's clock). */
    private long clock;
    private long seq;
    private int chosen;
    private final List<TierView> views = new ArrayList<>();
    /**
     * Last blocks of recently observed requests that are to be declined, the newest {@link #DECLINED_LIMIT}: in the
     * service several requests' lookups and puts interleave, so one request's announcement must not cancel
     * another's. A chain's own blocks leave the set when it is observed, so what a request's puts see is decided by
     * its own chain alone (the replay's sequential answers are those of a single key).
     */
    private final LinkedHashMap<BlockKey, Boolean> declined = new LinkedHashMap<>(16, 0.75f, false) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<BlockKey, Boolean> eldest) {
            return size() > DECLINED_LIMIT;
        }
    };

    /** A request's turn, and whether it got a next turn; shared by its blocks' metadata, forgotten with them. */
    private static final class Turn {
        final int turn;
        final int think;
        final long arrival;
        final long tick;
        /** Blocks in its chain. */
        final int length;
        boolean continued;

        Turn(int turn, int think, long arrival, long tick, int length) {
            this.turn = turn;
            this.think = think;
            this.arrival = arrival;
            this.tick = tick;
            this.length = length;
        }

        int cls() {
            return Math.min(turn, TURN_CLASSES - 1) * THINK_CLASSES + think;
        }
    }

    private static final class Meta {
        Turn request;
        int depth;
        /** Clock of the latest touch. */
        long tick;
        /** The highest ln(p(turn) / p(first turn)) of the requests that touched it. */
        double logRatio;
        /** Requests that touched it (while remembered). */
        long uses;
        boolean wasLast;
        boolean reused;
    }

    /** What a tier view keeps per resident block, so it can re-sort when the strength changes. */
    private record Stamp(long tick, double logRatio, double logUses, int depth, long seq) {
    }

    /** @param capacityBlocks the store's total capacity in blocks (DRAM + lower tier), ≥ 1 */
    public ConversationPolicy(int capacityBlocks) {
        this(capacityBlocks, STRENGTHS);
    }

    /** With other candidate strengths (tests fix one to see its order). */
    ConversationPolicy(int capacityBlocks, double[] strengths) {
        if (strengths.length == 0) {
            throw new IllegalArgumentException("strengths must not be empty");
        }
        if (capacityBlocks < 1) {
            throw new IllegalArgumentException("capacityBlocks must be positive, got " + capacityBlocks);
        }
        this.capacityBlocks = capacityBlocks;
        this.metaLimit = (int) Math.min(META_MAX, Math.max(1L << 16, 256L * capacityBlocks));
        this.meta = new LinkedHashMap<>(1024, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<BlockKey, Meta> eldest) {
                return size() > metaLimit;
            }
        };
        this.shadows = new ShadowCache[strengths.length];
        for (int i = 0; i < strengths.length; i++) {
            shadows[i] = new ShadowCache(capacityBlocks, strengths[i]);
        }
    }

    /**
     * Tells the policy the next request's chain (block 0 first), before the request's blocks are looked up, touched
     * or stored: it sets their keys and whether the last one is admitted.
     */
    public void observe(List<BlockKey> chain) {
        observe(chain, -1);
    }

    /**
     * As {@link #observe(List)}, with the request's arrival time (ms, non-decreasing over requests; negative when
     * unknown): a later turn's think time (since the turn it extends) refines its continuation estimate.
     */
    @Override
    public synchronized void observe(List<BlockKey> chain, long arrivalMillis) {
        if (chain.isEmpty()) {
            return;
        }
        int matched = 0;
        Meta deepest = null;
        while (matched < chain.size()) {
            Meta m = meta.get(chain.get(matched));
            if (m == null) {
                break;
            }
            deepest = m;
            matched++;
        }
        if (matched == chain.size() && isRepeat(chain, deepest.request)) {
            // The same request announced again (a retry, or a second Lookup before a restore, from a client that
            // does not mark repeats: the gateway's are not observed at all, LookupRequest.repeat, which also covers
            // a resume whose chain grew by its generated blocks and so is no repeat here): not a next turn, and not
            // one more use; its blocks keep their keys.
            return;
        }
        for (BlockKey k : chain) {
            declined.remove(k);
        }
        // A shared first block (a system prompt) says nothing about the conversation: position ≥ 1 must match.
        int turn = 0;
        int think = 0;
        if (matched >= 2) {
            Turn parent = deepest.request;
            turn = parent.turn + 1;
            if (!parent.continued && clock - parent.tick <= HORIZON * capacityBlocks) {
                parent.continued = true;
                turnContinued[Math.min(parent.turn, TURN_CLASSES - 1)]++;
                classContinued[parent.cls()]++;
            }
            if (arrivalMillis >= 0 && parent.arrival >= 0) {
                think = thinkClass(arrivalMillis - parent.arrival);
            }
        }
        Turn request = new Turn(turn, think, arrivalMillis, clock, chain.size());
        turnSeen[Math.min(turn, TURN_CLASSES - 1)]++;
        classSeen[request.cls()]++;
        for (int j = 0; j < matched; j++) {
            Meta m = meta.get(chain.get(j));
            if (!m.reused) {
                m.reused = true;
                if (m.wasLast) {
                    lastReused++;
                } else {
                    otherReused++;
                }
            }
        }
        boolean skipLast = declinesLastBlocks();
        double logRatio = Math.log(continuation(request.cls()) / continuation(0));
        long first = clock + 1;
        double[] logUses = new double[chain.size()];
        for (int j = 0; j < chain.size(); j++) {
            BlockKey k = chain.get(j);
            Meta m = meta.get(k);
            if (m == null) {
                m = new Meta();
                m.logRatio = logRatio;
                m.wasLast = j == chain.size() - 1 && j > 0;
                if (m.wasLast) {
                    lastCreated++;
                } else {
                    otherCreated++;
                }
                meta.put(k, m);
            } else {
                m.logRatio = Math.max(m.logRatio, logRatio);
            }
            m.tick = first;
            m.uses++;
            logUses[j] = Math.log(m.uses);
            m.request = request;
            m.depth = j;
        }
        if (skipLast && chain.size() > 1) {
            declined.put(chain.get(chain.size() - 1), Boolean.TRUE);
        }
        for (ShadowCache s : shadows) {
            s.score = s.score * SCORE_DECAY + s.replay(chain, first, logRatio, logUses, skipLast);
        }
        clock += chain.size();
        int best = chosen;
        for (int i = 0; i < shadows.length; i++) {
            if (shadows[i].score > shadows[best].score) {
                best = i;
            }
        }
        if (best != chosen) {
            // Keys of every resident block change with the strength: one consistent order, or blocks keyed under
            // a large strength would outlive their worth after a switch to a small one.
            chosen = best;
            for (TierView v : views) {
                v.resort();
            }
        }
    }

    /** Whether every block of {@code chain} was last touched by {@code request}, a chain of the same length. */
    private boolean isRepeat(List<BlockKey> chain, Turn request) {
        if (request.length != chain.size()) {
            return false;
        }
        for (BlockKey k : chain) {
            if (meta.get(k).request != request) {
                return false;
            }
        }
        return true;
    }

    /**
     * Fraction of the requests of class {@code cls} (turn and think time) that got a next turn: smoothed towards
     * the Laplace-smoothed fraction of their turn.
     */
    private double continuation(int cls) {
        int t = cls / THINK_CLASSES;
        double turnRate = (turnContinued[t] + 1.0) / (turnSeen[t] + 2.0);
        return (classContinued[cls] + CLASS_PRIOR * turnRate) / (classSeen[cls] + CLASS_PRIOR);
    }

    /** The continuation estimate of a turn without arrival times (think-time class 0); for tests. */
    synchronized double continuationOfTurn(int turn) {
        return continuation(Math.min(turn, TURN_CLASSES - 1) * THINK_CLASSES);
    }

    private static int thinkClass(long thinkMillis) {
        int c = 1;
        while (c - 1 < THINK_BOUNDS_MS.length && thinkMillis > THINK_BOUNDS_MS[c - 1]) {
            c++;
        }
        return c;
    }

    private boolean declinesLastBlocks() {
        if (lastCreated < LAST_BLOCK_EVIDENCE || otherCreated == 0) {
            return false;
        }
        return 4.0 * lastReused / lastCreated < (double) otherReused / otherCreated;
    }

    /** The bonus strength (in capacities) the next request uses; for tests and the replay's report. */
    public synchronized double strength() {
        return shadows[chosen].strength;
    }

    @Override
    public synchronized boolean admit(BlockKey key, AccessHint hint) {
        return !declined.containsKey(key);
    }

    /**
     * What a tier records for a block: its stamp from {@link #observe}, or, never observed (a put or get no Lookup
     * announced), the next tick of the clock: traffic the policy is not told about is ordered least recently used,
     * with no bonus.
     */
    private Stamp stampOf(BlockKey key, int position) {
        Meta m = meta.get(key);
        if (m == null) {
            return new Stamp(++clock, 0, 0, Math.max(position, 0), seq++);
        }
        return new Stamp(m.tick, m.logRatio, Math.log(m.uses), m.depth, seq++);
    }

    /** The key of a stamp under the current strength. */
    private PrefixPriority priority(Stamp s) {
        return new PrefixPriority(s.tick() + strength() * capacityBlocks * (s.logRatio() + s.logUses()), s.depth(),
                s.seq());
    }

    /**
     * A fresh eviction view for one tier of the store, ordered by this policy's keys (the policy keeps it, to
     * re-sort it when the strength changes).
     */
    public EvictionPolicy newTierPolicy() {
        TierView v = new TierView();
        views.add(v);
        return v;
    }

    /** One tier's resident blocks in the policy's order. */
    private final class TierView implements EvictionPolicy {
        private final Map<BlockKey, Stamp> resident = new HashMap<>();
        private final TreeMap<PrefixPriority, BlockKey> order = new TreeMap<>();

        @Override
        public void onInsert(BlockHistory history) {
            place(history);
        }

        @Override
        public void onAccess(BlockHistory history) {
            place(history);
        }

        private void place(BlockHistory history) {
            synchronized (ConversationPolicy.this) {
                drop(history.key());
                Stamp now = stampOf(history.key(), history.chainPosition());
                resident.put(history.key(), now);
                order.put(priority(now), history.key());
            }
        }

        @Override
        public void onRemove(BlockKey key) {
            synchronized (ConversationPolicy.this) {
                drop(key);
            }
        }

        private void drop(BlockKey key) {
            Stamp old = resident.remove(key);
            if (old != null) {
                order.remove(priority(old));
            }
        }

        /** Under the policy's monitor (from {@link #observe}). */
        void resort() {
            order.clear();
            resident.forEach((k, s) -> order.put(priority(s), k));
        }

        /**
         * The lowest-keyed block {@code evictable} accepts. The predicate is the tier's (it reads the tier's own
         * state under the tier's lock, which the caller holds), so it runs under the policy's monitor but never
         * calls back into the policy.
         */
        @Override
        public Optional<BlockKey> victim(Predicate<BlockKey> evictable) {
            synchronized (ConversationPolicy.this) {
                for (BlockKey k : order.values()) {
                    if (evictable.test(k)) {
                        return Optional.of(k);
                    }
                }
                return Optional.empty();
            }
        }
    }
}
