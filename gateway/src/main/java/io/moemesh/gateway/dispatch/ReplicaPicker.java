package io.moemesh.gateway.dispatch;

import java.util.List;

/**
 * Chooses which replica of an expert computes one (token, expert) pair of a layer, among the instances the
 * placement lists for it. Chosen by name in configuration ({@code moemesh.gateway.dispatch.replica-picker}), like
 * the expert backend and the wire dtype. A picker never changes a result, only where it is computed: every
 * replica holds the same weights. Called on the engine thread, once per pair and layer (or once per expert and layer,
 * {@link #wholeExperts}): allocation-free.
 */
public interface ReplicaPicker {

    /**
     * The dispatch's view of the instances for one pair (indices into the placement's instance list).
     * Valid only during the {@link #pick} call it is passed to.
     */
    interface Candidates {
        /** The instance may get calls: breaker not open, gRPC health not down, no failed call in this step. */
        boolean usable(int instance);

        /** An earlier pair of the same token at this layer already goes to the instance (one more row is free). */
        boolean visited(int instance);

        /**
         * Pairs assigned to the instance at this layer so far plus its calls in flight weighted by
         * {@link #IN_FLIGHT_WEIGHT} (a call in flight is a whole batch of rows).
         */
        int load(int instance);
    }

    /** How many assigned pairs one call in flight counts as in {@link Candidates#load}. */
    int IN_FLIGHT_WEIGHT = 64;

    /**
     * Today's rule, and the default: a replica on an instance the token already visits at this layer (its row is
     * sent there anyway, so the pair adds no row and no message), else the least loaded; ties go to the first
     * holder in placement order.
     */
    ReplicaPicker PREFER_VISITED = new ReplicaPicker() {
        @Override
        public int pick(int[] holders, Candidates c) {
            int best = -1;
            for (int h : holders) {
                if (!c.usable(h)) {
                    continue;
                }
                if (c.visited(h)) {
                    return h;
                }
                if (best < 0 || c.load(h) < c.load(best)) {
                    best = h;
                }
            }
            return best;
        }

        @Override
        public String name() {
            return "prefer-visited";
        }
    };

    /**
     * The least loaded usable replica, whether or not the token visits it already (ties: first in placement
     * order): spreads rows evenly at the price of more rows on the wire; the baseline to measure a locality rule
     * against.
     */
    ReplicaPicker LEAST_LOADED = new ReplicaPicker() {
        @Override
        public int pick(int[] holders, Candidates c) {
            int best = -1;
            for (int h : holders) {
                if (c.usable(h) && (best < 0 || c.load(h) < c.load(best))) {
                    best = h;
                }
            }
            return best;
        }

        @Override
        public String name() {
            return "least-loaded";
        }
    };

    /**
     * Balances the instances' work per layer step while each expert's pairs stay together: whole experts, the one
     * with the most pairs first, each to its least loaded usable replica (ties: first in placement order). That is
     * Graham's longest-processing-time-first rule for scheduling on identical machines (SIAM J. Appl. Math. 17(2),
     * 1969), applied to the step's actual routes; DeepSeek-V3's expert-parallel load balancer (EPLB) balances
     * replicated experts the same way, from routing history. An expert's weights are read by one instance per step
     * (a per-pair rule splits a popular expert across its replicas, and each replica reads its weights), and no
     * instance waits on a step whose experts landed unevenly on another: on a host whose instances share the cores
     * (the local mesh) the idle core time is the whole loss, on separate hosts the slowest instance sets the step.
     */
    ReplicaPicker BALANCED_EXPERTS = new ReplicaPicker() {
        @Override
        public int pick(int[] holders, Candidates c) {
            return LEAST_LOADED.pick(holders, c);
        }

        @Override
        public boolean wholeExperts() {
            return true;
        }

        @Override
        public String name() {
            return "balanced-experts";
        }
    };

    /** Every picker, the default first. */
    List<ReplicaPicker> ALL = List.of(PREFER_VISITED, LEAST_LOADED, BALANCED_EXPERTS);

    /**
     * @param holders the instances holding the expert, in placement order (never empty)
     * @return one of {@code holders} that is {@link Candidates#usable usable}, or -1 when none is
     */
    int pick(int[] holders, Candidates candidates);

    /** The name configuration uses. */
    String name();

    /**
     * Whether the dispatch asks this picker once per expert instead of once per pair: all pairs of one expert at a
     * layer then go to the replica picked for it, the experts with the most pairs asked first, loads counting each
     * expert's pairs as it is placed; {@link Candidates#visited} is false throughout (no one token is being placed).
     */
    default boolean wholeExperts() {
        return false;
    }

    /** The names configuration accepts, the default first. */
    static List<String> names() {
        return ALL.stream().map(ReplicaPicker::name).toList();
    }

    /**
     * The picker of that name.
     *
     * @throws IllegalArgumentException naming {@code property} and the accepted names when there is none
     */
    static ReplicaPicker named(String name, String property) {
        for (ReplicaPicker p : ALL) {
            if (p.name().equals(name)) {
                return p;
            }
        }
        throw new IllegalArgumentException(property + " must be one of " + String.join(", ", names()) + ", got '"
                + name + "'");
    }
}
