package io.moemesh.router.placement;

/**
 * The last step of the affinity planner where the fitted rows are few enough to replay: hill climbing on one
 * layer's slots scored by the gateway's own replica rule ({@link PlacementEval}'s: a replica on an instance the
 * token already uses, else the least loaded) replayed over the training rows in order. The statistics-based
 * packing assumes a copy gets its expert's load divided evenly and that sharing an instance keeps a pair together;
 * the replay measures what the rule does with the placement (which copy the first expert lands on decides
 * whether the second can follow), so it catches what the counts cannot.
 *
 * <p>Objective: mean distinct instances per row (fan-out) plus {@link #OVERLOAD_PENALTY} × the load ratio
 * (max / mean instance load) above {@link #LOAD_TARGET}: in-sample balance with headroom for a test load that
 * differs. Moves: swap two slots' experts between instances (an empty slot included: a move), or give a spare
 * copy of an expert with more than the minimum copies (the replicas every expert keeps) to another expert; the first
 * improving move is taken, passes repeat until none improves or {@link #MAX_PASSES}. A move that would make an expert
 * span fewer failure domains than it could ({@link DomainSpread}) is not tried: the replay tunes fan-out and balance
 * within the spread the packing gave. The shared expert's reserved slots ({@link LayerPacking#RESERVED}) never move.
 */
final class ReplayRefinement {
    static final double LOAD_TARGET = 1.03;
    static final double OVERLOAD_PENALTY = 4.0;
    static final int MAX_PASSES = 3;
    /** Replayed (row, expert) pairs one layer may cost per pass; larger layers keep the statistics-based packing. */
    static final long WORK_BUDGET = 60_000_000L;

    private final int n;
    private final int s;
    private final int experts;
    private final int[][] rows;
    private final int[] slot;
    private final long[] load;
    private final boolean[] used;
    private final int[] chosen;
    private final DomainSpread spread;
    /** Copies every expert keeps: a spare copy is one above it. */
    private final int minCopies;

    private ReplayRefinement(int n, int s, int experts, int[][] rows, int[] slot, FailureDomains domains,
                             int minCopies) {
        this.minCopies = minCopies;
        this.n = n;
        this.s = s;
        this.experts = experts;
        this.rows = rows;
        this.slot = slot;
        this.load = new long[n];
        this.used = new boolean[n];
        this.chosen = new int[n];
        this.spread = DomainSpread.of(domains, experts, slot, s);
    }

    /** Whether replaying this layer fits the work budget. */
    static boolean affordable(int n, int s, int experts, int[][] rows) {
        if (rows.length == 0) {
            return false;
        }
        long slots = (long) n * s;
        long moves = slots * slots / 2 + slots * experts;
        return moves * rows.length * rows[0].length <= WORK_BUDGET;
    }

    /**
     * Improves {@code slot} (instance i × S + k → expert, {@link LayerPacking#EMPTY} or
     * {@link LayerPacking#RESERVED}) in place, every expert keeping at least {@code minCopies} copies.
     */
    static void refine(int n, int s, int experts, int[][] rows, int[] slot, FailureDomains domains, int minCopies) {
        new ReplayRefinement(n, s, experts, rows, slot, domains, minCopies).run();
    }

    private void run() {
        double best = score();
        int total = n * s;
        for (int pass = 0; pass < MAX_PASSES; pass++) {
            boolean changed = false;
            for (int p = 0; p < total; p++) {
                for (int q = (p / s + 1) * s; q < total; q++) {
                    int ep = slot[p];
                    int eq = slot[q];
                    int i = p / s;
                    int j = q / s;
                    if (ep == eq || ep == LayerPacking.RESERVED || eq == LayerPacking.RESERVED
                            || ep >= 0 && (holds(j, ep) || !spread.canMove(ep, i, j))
                            || eq >= 0 && (holds(i, eq) || !spread.canMove(eq, j, i))) {
                        continue;
                    }
                    slot[p] = eq;
                    slot[q] = ep;
                    double v = score();
                    if (v < best - 1e-12) {
                        best = v;
                        changed = true;
                        if (ep >= 0) {
                            spread.remove(i, ep);
                            spread.add(j, ep);
                        }
                        if (eq >= 0) {
                            spread.remove(j, eq);
                            spread.add(i, eq);
                        }
                    } else {
                        slot[p] = ep;
                        slot[q] = eq;
                    }
                }
            }
            for (int p = 0; p < total; p++) {
                int ep = slot[p];
                int i = p / s;
                if (ep < 0 || copies(ep) <= minCopies || !spread.canRemove(ep, i)) {
                    continue;
                }
                for (int e = 0; e < experts; e++) {
                    if (e == ep || holds(i, e) || !spread.canAdd(e, i)) {
                        continue;
                    }
                    slot[p] = e;
                    double v = score();
                    if (v < best - 1e-12) {
                        best = v;
                        changed = true;
                        spread.remove(i, ep);
                        spread.add(i, e);
                        break;
                    }
                    slot[p] = ep;
                }
            }
            if (!changed) {
                return;
            }
        }
    }

    private boolean holds(int instance, int e) {
        for (int k = instance * s; k < (instance + 1) * s; k++) {
            if (slot[k] == e) {
                return true;
            }
        }
        return false;
    }

    private int copies(int e) {
        int c = 0;
        for (int x : slot) {
            if (x == e) {
                c++;
            }
        }
        return c;
    }

    /** Replays the rows with the gateway's rule; holders in ascending instance order, as the planner writes them. */
    private double score() {
        int[][] holders = new int[experts][];
        int[] count = new int[experts];
        for (int x : slot) {
            if (x >= 0) {
                count[x]++;
            }
        }
        for (int e = 0; e < experts; e++) {
            holders[e] = new int[count[e]];
            count[e] = 0;
        }
        for (int k = 0; k < slot.length; k++) {
            int x = slot[k];
            if (x >= 0) {
                holders[x][count[x]++] = k / s;
            }
        }
        for (int e = 0; e < experts; e++) {
            if (holders[e].length == 0) {
                return Double.MAX_VALUE; // every expert must stay placed
            }
        }
        java.util.Arrays.fill(load, 0);
        long visited = 0;
        for (int[] row : rows) {
            int distinct = 0;
            for (int e : row) {
                int best = -1;
                for (int h : holders[e]) {
                    if (used[h]) {
                        best = h;
                        break;
                    }
                    if (best < 0 || load[h] < load[best]) {
                        best = h;
                    }
                }
                if (!used[best]) {
                    used[best] = true;
                    chosen[distinct++] = best;
                }
                load[best]++;
            }
            for (int d = 0; d < distinct; d++) {
                used[chosen[d]] = false;
            }
            visited += distinct;
        }
        long max = 0;
        long sum = 0;
        for (long v : load) {
            max = Math.max(max, v);
            sum += v;
        }
        double ratio = sum == 0 ? 1 : max / ((double) sum / n);
        return (double) visited / rows.length + OVERLOAD_PENALTY * Math.max(0, ratio - LOAD_TARGET);
    }
}
