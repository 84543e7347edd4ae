package io.moemesh.gateway.dispatch;

import io.moemesh.service.placement.PlacementTable;
import java.util.Arrays;

/**
 * Which instance computes each (token, expert) pair of a layer: the configured {@link ReplicaPicker}'s choice among
 * the instances holding the expert, asked once per pair, or once per expert for a
 * {@link ReplicaPicker#wholeExperts} picker. Engine thread only: it reuses one view of the instances.
 */
final class PairAssignment {
    private final ReplicaPicker picker;
    private final Choice choice = new Choice();
    /** {@link #wholeExperts}'s per-expert scratch (pairs, pick order, chosen instance), reused layer after layer. */
    private int[] count = new int[0];
    private int[] order = new int[0];
    private int[] chosen = new int[0];

    PairAssignment(ReplicaPicker picker) {
        this.picker = picker;
    }

    /**
     * Assigns every pair of a step still to compute (all when {@code only} is null) among the holders that are
     * healthy and did not fail in this step.
     *
     * @param instances the placement's instances, in its order (what {@code target} indexes)
     * @throws ExpertUnavailableException naming the expert and its holders when one has no usable replica
     */
    void assign(PlacementTable table, ResilientInstance[] instances, int layer, int tokens, int[] experts,
                int perToken, int[] target, boolean[] failed, boolean[] only) {
        choice.start(instances, perToken, target, failed);
        if (picker.wholeExperts()) {
            wholeExperts(table, layer, tokens * perToken, experts, target, only, true);
        } else {
            perPair(table, layer, tokens, experts, perToken, target, only, true);
        }
    }

    /**
     * Where pairs already in flight could be computed besides (a hedge): every pair of {@code only} among its holders
     * that are healthy and not {@code excluded}, as {@link #assign} picks; a pair with no such holder gets -1 in
     * {@code target} instead of failing the step (its call in flight may still answer). {@code target} holds -1 for
     * every pair of {@code only} on entry.
     */
    void assignElsewhere(PlacementTable table, ResilientInstance[] instances, int layer, int tokens, int[] experts,
                         int perToken, int[] target, boolean[] excluded, boolean[] only) {
        choice.start(instances, perToken, target, excluded);
        if (picker.wholeExperts()) {
            wholeExperts(table, layer, tokens * perToken, experts, target, only, false);
        } else {
            perPair(table, layer, tokens, experts, perToken, target, only, false);
        }
    }

    /**
     * Where predicted pairs would be computed if they were a step's routes: the same picks over the same usable
     * replicas, but a pair whose expert is out of range or has no usable replica gets -1 rather than an error.
     */
    void predict(PlacementTable table, ResilientInstance[] instances, int layer, int rows, int[] experts, int perRow,
                 int[] target) {
        Arrays.fill(target, -1);
        choice.start(instances, perRow, target, new boolean[instances.length]);
        if (picker.wholeExperts()) {
            wholeExperts(table, layer, rows * perRow, experts, target, null, false);
        } else {
            perPair(table, layer, rows, experts, perRow, target, null, false);
        }
    }

    /**
     * After {@code choice.start}: one pick per pair, token by token, each pair counted into the loads before the next.
     *
     * @param required whether an expert out of range or without a usable replica is an error (a step) or leaves its
     *                 pair unassigned (a prediction or a hedge)
     */
    private void perPair(PlacementTable table, int layer, int tokens, int[] experts, int perToken, int[] target,
                         boolean[] only, boolean required) {
        int[][] holders = table.holders()[layer];
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < perToken; j++) {
                int p = t * perToken + j;
                if (only != null && !only[p]) {
                    continue;
                }
                int e = experts[p];
                if (!inRange(layer, e, holders.length, required)) {
                    continue;
                }
                choice.pair(t, j);
                int best = picker.pick(holders[e], choice);
                if (best >= 0) {
                    target[p] = best;
                    choice.assigned[best]++;
                } else if (required) {
                    throw noReplica(table, layer, e, holders[e]);
                }
            }
        }
    }

    /**
     * For a {@link ReplicaPicker#wholeExperts} picker, after {@code choice.start}: one pick per expert with pairs
     * to place, the expert with the most pairs first (ties: lower expert id), each expert's pairs counted into the
     * loads before the next pick.
     *
     * @param required whether an expert out of range or without a usable replica is an error (a step) or leaves its
     *                 pairs unassigned (a prediction or a hedge)
     */
    private void wholeExperts(PlacementTable table, int layer, int pairs, int[] experts, int[] target, boolean[] only,
                              boolean required) {
        int[][] holders = table.holders()[layer];
        if (count.length != holders.length) {
            count = new int[holders.length];
            order = new int[holders.length];
            chosen = new int[holders.length];
        } else {
            Arrays.fill(count, 0);
        }
        for (int p = 0; p < pairs; p++) {
            if ((only == null || only[p]) && inRange(layer, experts[p], holders.length, required)) {
                count[experts[p]]++;
            }
        }
        int n = 0;
        for (int e = 0; e < holders.length; e++) {
            if (count[e] > 0) {
                // Insertion sort, most pairs first: a layer has tens of experts at most.
                int k = n++;
                while (k > 0 && count[order[k - 1]] < count[e]) {
                    order[k] = order[k - 1];
                    k--;
                }
                order[k] = e;
            }
        }
        Arrays.fill(chosen, -1);
        choice.pair(0, 0);
        for (int k = 0; k < n; k++) {
            int e = order[k];
            int best = picker.pick(holders[e], choice);
            if (best < 0 && required) {
                throw noReplica(table, layer, e, holders[e]);
            }
            if (best >= 0) {
                chosen[e] = best;
                choice.assigned[best] += count[e];
            }
        }
        for (int p = 0; p < pairs; p++) {
            int e = experts[p];
            if ((only == null || only[p]) && e >= 0 && e < holders.length) {
                target[p] = chosen[e];
            }
        }
    }

    /**
     * Whether {@code expert} is one of the layer's; out of range it is skipped in a prediction and a broken invariant
     * in a step (the engine routes to the model's experts).
     */
    private static boolean inRange(int layer, int expert, int experts, boolean required) {
        if (expert >= 0 && expert < experts) {
            return true;
        }
        if (required) {
            throw new IllegalStateException("layer " + layer + ": routed expert " + expert + " is not in [0, " + experts
                    + ")");
        }
        return false;
    }

    private static ExpertUnavailableException noReplica(PlacementTable table, int layer, int expert, int[] holders) {
        StringBuilder names = new StringBuilder();
        for (int h : holders) {
            names.append(names.isEmpty() ? "" : ", ").append(table.instances().get(h).getId());
        }
        String what = "layer " + layer + " expert " + expert + " has no healthy replica";
        // The instances and the epoch are the operator's to know: the client is told only what failed.
        return new ExpertUnavailableException(what + " (placed on " + names + ", epoch " + table.epoch() + ")",
                what + "; retry", null);
    }

    /** The picker's view of one pair (or one whole expert); reused for every pick. */
    private static final class Choice implements ReplicaPicker.Candidates {
        int[] assigned = new int[0];
        private ResilientInstance[] instances;
        private int perToken;
        private int[] target;
        private boolean[] failed;
        private int token;
        private int index;

        void start(ResilientInstance[] instances, int perToken, int[] target, boolean[] failed) {
            this.instances = instances;
            this.perToken = perToken;
            this.target = target;
            this.failed = failed;
            if (assigned.length != instances.length) {
                assigned = new int[instances.length];
            } else {
                Arrays.fill(assigned, 0);
            }
        }

        /** The pair's token and its index among the token's pairs; (0, 0) for a whole expert (nothing visited). */
        void pair(int token, int index) {
            this.token = token;
            this.index = index;
        }

        @Override
        public boolean usable(int instance) {
            return !failed[instance] && instances[instance].available();
        }

        @Override
        public boolean visited(int instance) {
            for (int k = 0; k < index; k++) {
                if (target[token * perToken + k] == instance) {
                    return true;
                }
            }
            return false;
        }

        @Override
        public int load(int instance) {
            return assigned[instance] + instances[instance].load() * ReplicaPicker.IN_FLIGHT_WEIGHT;
        }
    }
}
