package io.moemesh.router.placement;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;

/**
 * Scores a placement on a test trace with the gateway's replica rule (issue 10, item 5; {@code ReplicaPicker}'s
 * {@code prefer-visited}): tokens in file order, and for each of a token's experts at a layer, best first, a replica
 * on an instance the token already uses at that layer (the first in placement order), else the least-loaded replica
 * (ties: the first in placement order); load = (token, expert) pairs per instance per layer, accumulated over the whole
 * trace. Every row counts (a token's layers need not be complete).
 *
 * @param fanOut        mean distinct instances per token per layer (messages a token's layer costs)
 * @param loadMaxOverMean mean over layers of the most loaded instance's pairs over the mean instance's (all N
 *                      instances, idle ones included): the slowest instance gates every layer
 * @param crossPairs    fraction of consecutive-layer expert pairs (a at l, b at l + 1 of one token, top-k × top-k
 *                      per token) whose chosen instances differ
 * @param extraReplicas copies beyond one per (layer, expert), summed over layers
 * @param slotsUsed     the most experts one instance holds at one layer
 */
public record PlacementEval(double fanOut, double loadMaxOverMean, double crossPairs, int extraReplicas, int slotsUsed) {

    /**
     * @throws IllegalArgumentException when the placement does not cover the trace's layers and experts
     */
    public static PlacementEval score(Placement placement, RouteTrace trace) {
        if (placement.firstLayer() != trace.firstLayer() || placement.layers() != trace.layers()) {
            throw new IllegalArgumentException("the placement has layers " + placement.firstLayer() + ".."
                    + (placement.firstLayer() + placement.layers() - 1) + ", the trace " + trace.source() + " "
                    + trace.firstLayer() + ".." + (trace.firstLayer() + trace.layers() - 1));
        }
        int n = placement.instances();
        int layers = trace.layers();
        long[][] load = new long[layers][n];
        long rows = 0;
        long visited = 0;
        long pairs = 0;
        long crossing = 0;
        boolean[] used = new boolean[n];
        for (TokenRoute t : trace.tokens()) {
            int[] prev = null;
            for (int l = 0; l < layers; l++) {
                int[] es = t.experts()[l];
                if (es == null) {
                    prev = null;
                    continue;
                }
                java.util.Arrays.fill(used, false);
                int[] chosen = new int[es.length];
                int distinct = 0;
                for (int k = 0; k < es.length; k++) {
                    int e = es[k];
                    if (e < 0 || e >= placement.experts(l)) {
                        throw new IllegalArgumentException(trace.source() + ": token " + t.key() + " layer "
                                + trace.layerNumber(l) + " routes to expert " + e + ", which the placement does not place");
                    }
                    int pick = pick(placement.holders()[l][e], used, load[l]);
                    chosen[k] = pick;
                    if (!used[pick]) {
                        used[pick] = true;
                        distinct++;
                    }
                    load[l][pick]++;
                }
                rows++;
                visited += distinct;
                if (prev != null) {
                    for (int a : prev) {
                        for (int b : chosen) {
                            pairs++;
                            if (a != b) {
                                crossing++;
                            }
                        }
                    }
                }
                prev = chosen;
            }
        }
        if (rows == 0) {
            throw new IllegalArgumentException(trace.source() + ": no routes to score");
        }
        double ratioSum = 0;
        int scoredLayers = 0;
        for (int l = 0; l < layers; l++) {
            long total = 0;
            long max = 0;
            for (long v : load[l]) {
                total += v;
                max = Math.max(max, v);
            }
            if (total > 0) {
                ratioSum += max / ((double) total / n);
                scoredLayers++;
            }
        }
        return new PlacementEval((double) visited / rows, ratioSum / scoredLayers,
                pairs == 0 ? 0 : (double) crossing / pairs, placement.extraReplicas(), placement.maxSlotsUsed());
    }

    /**
     * The gateway's {@code prefer-visited}: the first holder (placement order) the token already uses at this layer,
     * else the least loaded holder, ties to the first in placement order.
     */
    private static int pick(int[] holders, boolean[] used, long[] load) {
        int best = -1;
        for (int h : holders) {
            if (used[h]) {
                return h;
            }
            if (best < 0 || load[h] < load[best]) {
                best = h;
            }
        }
        return best;
    }
}
