package io.moemesh.router.placement;

import java.util.ArrayList;
import java.util.List;

/**
 * Affinity packing, layer by layer (the default planner).
 *
 * <ol>
 *   <li><b>Replicas in the spare slots</b> (EPLB's redundant-expert rule, DeepSeek-V3 technical report §3.4 and
 *       github.com/deepseek-ai/EPLB; Lina, Li et al., USENIX ATC 2023, replicates popular experts the same way):
 *       while a slot is free, the expert whose copies carry the most (token, expert) pairs each gets one more copy
 *       (never more copies than instances; experts with no traffic get none). Every spare slot is used: a copy is
 *       what lets the gateway's least-loaded rule absorb a test load that differs from the training load (on the
 *       traces, filling only the slots whose copy would carry more than a mean slot's load balanced worse:
 *       docs/performance.md, "Placement").</li>
 *   <li><b>Greedy packing</b>: copies heaviest first, each onto an instance with a free slot that does not hold the
 *       expert yet, within the load cap ({@code (1 + 1%) ×} the mean instance load, at least the copy itself),
 *       choosing the instance with the most affinity: tokens that chose this expert together with the experts
 *       already there (within-layer co-activation: a token's top-k on one instance is one message instead of
 *       several) plus, weighted {@link #INTER_LAYER_WEIGHT}, tokens that came to it from the experts this instance
 *       holds at the previous layer (ExFlow's inter-layer affinity, Yao et al., IPDPS 2024, arXiv:2401.08383: a
 *       token that stays on its instance between layers crosses no link). Ties: least loaded, fewest experts,
 *       lowest index (deterministic).</li>
 *   <li><b>Balance repair</b>, then <b>local search</b> (Kernighan–Lin style pairwise swaps of copies, empty slots
 *       included, so moves too): a swap is taken when it raises the affinity and leaves both instances within the
 *       cap (or no worse than the more loaded of the two was), until a pass changes nothing.</li>
 *   <li><b>Replay</b> ({@link ReplayRefinement}; not in {@value #STATS_ONLY_NAME}): where the layer's training rows
 *       are few enough, hill climbing scored by replaying the gateway's replica rule over them.</li>
 * </ol>
 *
 * <p>Pair weights follow the gateway's rule: a token's experts are placed best first, so expert b joins a on a
 * shared instance only when a's chosen copy is there ({@code pairWeights}).
 *
 * <p>The expected load of a copy is the expert's load divided by its copies; the gateway's replica rule
 * (prefer an instance the token already visits, else the least loaded) splits it less evenly, which
 * {@link PlacementEval} measures. Steps 1–3 cost O(passes × (N × S)²) per layer with O(1) per swap (per-instance
 * affinity sums are kept up to date), so 256 experts × 60 layers × 64 instances plans in well under the 2 s goal
 * ({@code moemesh bench planner}); the replay is bounded by {@link ReplayRefinement#WORK_BUDGET} per layer and
 * skipped beyond it (as at that size).
 */
public final class AffinityPlanner implements PlacementPlanner {
    public static final String NAME = "affinity";
    /** The same packing without the replay step: statistics only (what a router has once rows are too many). */
    public static final String STATS_ONLY_NAME = "affinity-stats";
    /** Weight of one inter-layer transition against one within-layer co-activation (fan-out first). */
    static final double INTER_LAYER_WEIGHT = 0.5;
    /** Load cap above the mean instance load: the slowest instance gates every layer. */
    static final double LOAD_TOLERANCE = 0.01;
    private static final int MAX_PASSES = 30;
    private static final double EPS = 1e-9;

    private final boolean replay;

    /** The default planner: packing from the statistics, then the replay where it is affordable. */
    public AffinityPlanner() {
        this(true);
    }

    /** @param replay whether to refine affordable layers by replaying the rows ({@link ReplayRefinement}) */
    public AffinityPlanner(boolean replay) {
        this.replay = replay;
    }

    @Override
    public String name() {
        return replay ? NAME : STATS_ONLY_NAME;
    }

    @Override
    public Placement plan(RouteStats stats, PlacementBudget budget, List<String> instanceIds) {
        PlacementPlanners.requireIds(budget, instanceIds);
        int n = budget.instances();
        int slots = budget.slotsPerLayer(stats.layers(), stats.experts());
        int[][][] holders = new int[stats.layers()][][];
        boolean[][] previous = null;
        for (int l = 0; l < stats.layers(); l++) {
            double[][] transitionsIn = l == 0 ? null : stats.transitions()[l - 1];
            LayerPacking p = new LayerPacking(n, slots, stats.load()[l], stats.coactivation()[l], previous, transitionsIn);
            p.pack();
            int[][] rows = stats.rows()[l];
            if (replay && ReplayRefinement.affordable(n, slots, stats.experts(), rows)) {
                ReplayRefinement.refine(n, slots, stats.experts(), rows, p.slot);
                p.rebuildHolds();
            }
            holders[l] = p.holders();
            previous = p.holds;
        }
        return new Placement(instanceIds, stats.firstLayer(), holders);
    }

    /** One layer's packing state: slot i × S + s of instance i holds an expert or -1. */
    private static final class LayerPacking {
        final int n;
        final int s;
        final int experts;
        final double[] load;
        /** Tokens that chose a, then b ranked below it (RouteStats' co-activation). */
        final double[][] directed;
        /** Symmetric pair weight once the copies are known: see {@link #pairWeights()}. */
        final double[][] co;
        /** [instance][expert] affinity with the instance's previous-layer experts, already weighted. */
        final double[][] prevAff;
        final int[] slot;
        final double[] share;
        final boolean[][] holds;
        final double[] instLoad;
        final int[] instCount;
        /** [instance][expert] Σ co-activation of the expert with the experts on the instance. */
        final double[][] coSum;
        final int[] copies;
        double cap;

        LayerPacking(int n, int s, double[] load, double[][] co, boolean[][] prevHolds, double[][] transitionsIn) {
            this.n = n;
            this.s = s;
            this.experts = load.length;
            this.load = load;
            this.directed = co;
            this.co = new double[experts][experts];
            this.slot = new int[n * s];
            java.util.Arrays.fill(slot, -1);
            this.share = new double[n * s];
            this.holds = new boolean[n][experts];
            this.instLoad = new double[n];
            this.instCount = new int[n];
            this.coSum = new double[n][experts];
            this.copies = new int[experts];
            this.prevAff = new double[n][experts];
            if (prevHolds != null) {
                for (int i = 0; i < n; i++) {
                    for (int a = 0; a < transitionsIn.length; a++) {
                        if (prevHolds[i][a]) {
                            double[] row = transitionsIn[a];
                            for (int b = 0; b < experts; b++) {
                                prevAff[i][b] += INTER_LAYER_WEIGHT * row[b];
                            }
                        }
                    }
                }
            }
        }

        void pack() {
            double total = 0;
            double hottest = 0;
            for (double v : load) {
                total += v;
            }
            java.util.Arrays.fill(copies, 1);
            for (int spare = n * s - experts; spare > 0; spare--) {
                int best = -1;
                for (int e = 0; e < experts; e++) {
                    if (copies[e] < n && (best < 0 || load[e] / copies[e] > load[best] / copies[best])) {
                        best = e;
                    }
                }
                if (best < 0 || load[best] == 0) {
                    break;
                }
                copies[best]++;
            }
            pairWeights();
            List<int[]> items = new ArrayList<>();
            for (int e = 0; e < experts; e++) {
                hottest = Math.max(hottest, load[e] / copies[e]);
                for (int c = 0; c < copies[e]; c++) {
                    items.add(new int[] {e, c});
                }
            }
            items.sort((x, y) -> {
                int byShare = Double.compare(load[y[0]] / copies[y[0]], load[x[0]] / copies[x[0]]);
                return byShare != 0 ? byShare : x[0] != y[0] ? Integer.compare(x[0], y[0]) : Integer.compare(x[1], y[1]);
            });
            cap = Math.max(total / n * (1 + LOAD_TOLERANCE), hottest);
            for (int[] item : items) {
                placeGreedy(item[0]);
            }
            repairBalance();
            localSearch();
        }

        /**
         * The worth of a and b sharing an instance, as the gateway's rule sees it: a token that chose a, then b, sends
         * a to the least loaded of a's copies and then b to that instance if b is there; with a's copies spread
         * evenly, one instance holding both keeps the pair together for 1 / copies(a) of those tokens. Hence
         * {@code directed[a][b] / copies(a) + directed[b][a] / copies(b)}: a pair next to one copy of a hot,
         * many-times replicated expert is worth less than next to a single-copy expert.
         */
        private void pairWeights() {
            for (int a = 0; a < experts; a++) {
                for (int b = 0; b < experts; b++) {
                    if (a != b) {
                        co[a][b] = directed[a][b] / copies[a] + directed[b][a] / copies[b];
                    }
                }
            }
        }

        private double affinity(int i, int e) {
            return coSum[i][e] + prevAff[i][e];
        }

        private void placeGreedy(int e) {
            double w = load[e] / copies[e];
            int best = -1;
            boolean bestFits = false;
            for (int i = 0; i < n; i++) {
                if (instCount[i] == s || holds[i][e]) {
                    continue;
                }
                boolean fits = instLoad[i] + w <= cap + EPS;
                if (best < 0 || better(i, fits, best, bestFits, e)) {
                    best = i;
                    bestFits = fits;
                }
            }
            if (best < 0) {
                best = makeRoom(e);
            }
            int free = freeSlot(best);
            put(free, e, w);
        }

        /** Whether instance i (within the cap or not) beats the best so far for expert e. */
        private boolean better(int i, boolean fits, int best, boolean bestFits, int e) {
            if (fits != bestFits) {
                return fits;
            }
            if (fits) {
                double a = affinity(i, e);
                double b = affinity(best, e);
                if (a != b) {
                    return a > b;
                }
            }
            if (instLoad[i] != instLoad[best]) {
                return instLoad[i] < instLoad[best];
            }
            return instCount[i] < instCount[best];
        }

        /**
         * Every instance with a free slot already holds e: move some expert x from a full instance j without e to
         * such an instance (j has S experts, the other fewer, so one of j's is not there), freeing a slot on j.
         */
        private int makeRoom(int e) {
            for (int i = 0; i < n; i++) {
                if (instCount[i] == s) {
                    continue;
                }
                for (int j = 0; j < n; j++) {
                    if (holds[j][e]) {
                        continue;
                    }
                    for (int k = j * s; k < (j + 1) * s; k++) {
                        int x = slot[k];
                        if (x >= 0 && !holds[i][x]) {
                            double w = share[k];
                            remove(k);
                            put(freeSlot(i), x, w);
                            return j;
                        }
                    }
                }
            }
            throw new IllegalStateException("no room for expert " + e); // unreachable: copies ≤ N, N × S ≥ copies
        }

        private int freeSlot(int i) {
            for (int k = i * s; k < (i + 1) * s; k++) {
                if (slot[k] < 0) {
                    return k;
                }
            }
            throw new IllegalStateException("instance " + i + " is full");
        }

        private void put(int k, int e, double w) {
            int i = k / s;
            slot[k] = e;
            share[k] = w;
            holds[i][e] = true;
            instLoad[i] += w;
            instCount[i]++;
            double[] row = co[e];
            double[] sum = coSum[i];
            for (int x = 0; x < experts; x++) {
                sum[x] += row[x];
            }
        }

        private void remove(int k) {
            int i = k / s;
            int e = slot[k];
            holds[i][e] = false;
            instLoad[i] -= share[k];
            instCount[i]--;
            double[] row = co[e];
            double[] sum = coSum[i];
            for (int x = 0; x < experts; x++) {
                sum[x] -= row[x];
            }
            slot[k] = -1;
            share[k] = 0;
        }

        /** Whether slots p and q (on different instances) may swap: neither instance gets an expert twice. */
        private boolean swappable(int p, int q) {
            int i = p / s;
            int j = q / s;
            int ep = slot[p];
            int eq = slot[q];
            return ep != eq && (ep < 0 || !holds[j][ep]) && (eq < 0 || !holds[i][eq]);
        }

        /** Change of the total affinity if slots p (instance i) and q (instance j) swap their experts. */
        private double gain(int p, int q) {
            int i = p / s;
            int j = q / s;
            int ep = slot[p];
            int eq = slot[q];
            double g = 0;
            if (ep >= 0) {
                g += coSum[j][ep] - coSum[i][ep] + prevAff[j][ep] - prevAff[i][ep] - (eq >= 0 ? co[ep][eq] : 0);
            }
            if (eq >= 0) {
                g += coSum[i][eq] - coSum[j][eq] + prevAff[i][eq] - prevAff[j][eq] - (ep >= 0 ? co[eq][ep] : 0);
            }
            return g;
        }

        private void swap(int p, int q) {
            int ep = slot[p];
            int eq = slot[q];
            double wp = share[p];
            double wq = share[q];
            if (ep >= 0) {
                remove(p);
            }
            if (eq >= 0) {
                remove(q);
            }
            if (ep >= 0) {
                put(q, ep, wp);
            }
            if (eq >= 0) {
                put(p, eq, wq);
            }
        }

        /** Moves load off instances above the cap: the swap that lowers the pair's maximum most, best affinity first. */
        private void repairBalance() {
            for (int round = 0; round < n * s; round++) {
                int worst = 0;
                for (int i = 1; i < n; i++) {
                    if (instLoad[i] > instLoad[worst]) {
                        worst = i;
                    }
                }
                if (instLoad[worst] <= cap + EPS) {
                    return;
                }
                int bestP = -1;
                int bestQ = -1;
                double bestMax = instLoad[worst];
                for (int p = worst * s; p < (worst + 1) * s; p++) {
                    for (int q = 0; q < n * s; q++) {
                        if (q / s == worst || !swappable(p, q)) {
                            continue;
                        }
                        int j = q / s;
                        double newMax = Math.max(instLoad[worst] - share[p] + share[q], instLoad[j] - share[q] + share[p]);
                        if (newMax < bestMax - EPS) {
                            bestMax = newMax;
                            bestP = p;
                            bestQ = q;
                        }
                    }
                }
                if (bestP < 0) {
                    return;
                }
                swap(bestP, bestQ);
            }
        }

        private void localSearch() {
            int total = n * s;
            for (int pass = 0; pass < MAX_PASSES; pass++) {
                boolean changed = false;
                for (int p = 0; p < total; p++) {
                    for (int q = (p / s + 1) * s; q < total; q++) {
                        if (slot[p] < 0 && slot[q] < 0 || !swappable(p, q)) {
                            continue;
                        }
                        double g = gain(p, q);
                        if (g <= EPS) {
                            continue;
                        }
                        int i = p / s;
                        int j = q / s;
                        double newI = instLoad[i] - share[p] + share[q];
                        double newJ = instLoad[j] - share[q] + share[p];
                        double limit = Math.max(cap, Math.max(instLoad[i], instLoad[j])) + EPS;
                        if (newI <= limit && newJ <= limit) {
                            swap(p, q);
                            changed = true;
                        }
                    }
                }
                if (!changed) {
                    return;
                }
            }
        }

        /** After the slots changed outside this class (the replay): which instance holds which expert again. */
        void rebuildHolds() {
            for (boolean[] h : holds) {
                java.util.Arrays.fill(h, false);
            }
            for (int k = 0; k < slot.length; k++) {
                if (slot[k] >= 0) {
                    holds[k / s][slot[k]] = true;
                }
            }
        }

        int[][] holders() {
            int[][] h = new int[experts][];
            for (int e = 0; e < experts; e++) {
                int c = 0;
                for (int i = 0; i < n; i++) {
                    if (holds[i][e]) {
                        c++;
                    }
                }
                h[e] = new int[c];
                c = 0;
                for (int i = 0; i < n; i++) {
                    if (holds[i][e]) {
                        h[e][c++] = i;
                    }
                }
            }
            return h;
        }
    }
}
