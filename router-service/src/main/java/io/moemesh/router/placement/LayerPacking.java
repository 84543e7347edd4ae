package io.moemesh.router.placement;

import java.util.ArrayList;
import java.util.List;

/**
 * One layer's packing state for {@link AffinityPlanner} (its steps 1–3, described there): slot i × S + s of instance
 * i holds an expert, {@link #EMPTY} or {@link #RESERVED} (the shared expert's copy, which the planner does not move),
 * with the per-instance loads, counts (reserved slots included) and affinity sums kept up to date on every move, and
 * the copies' spread over the failure domains ({@link DomainSpread}).
 */
final class LayerPacking {
    private static final int MAX_PASSES = 30;
    private static final double EPS = 1e-9;
    /** A free slot. */
    static final int EMPTY = -1;
    /** The slot of the layer's shared expert copy on this instance: never free, never moved or swapped. */
    static final int RESERVED = -2;

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
    final FailureDomains domains;
    /** Copies every expert keeps, whatever its load: min(replicas, instances). */
    final int minCopies;
    /** Slots not reserved for the shared expert: what the routed experts' copies may take. */
    final int capacity;
    /** The copies of each expert per failure domain. */
    DomainSpread spread;
    double cap;

    /**
     * @param minCopies copies of every expert at least, in [1, n]
     * @param reserved  the instances holding the layer's shared expert copy (one slot each), distinct
     */
    LayerPacking(int n, int s, double[] load, double[][] co, boolean[][] prevHolds, double[][] transitionsIn,
                 FailureDomains domains, int minCopies, int[] reserved) {
        this.n = n;
        this.s = s;
        this.experts = load.length;
        this.load = load;
        this.directed = co;
        this.co = new double[experts][experts];
        this.slot = new int[n * s];
        java.util.Arrays.fill(slot, EMPTY);
        this.share = new double[n * s];
        this.holds = new boolean[n][experts];
        this.instLoad = new double[n];
        this.instCount = new int[n];
        this.minCopies = minCopies;
        for (int i : reserved) {
            slot[i * s] = RESERVED;
            instCount[i]++;
        }
        this.capacity = n * s - reserved.length;
        if (minCopies < 1 || minCopies > n || (long) experts * minCopies > capacity) {
            // PlacementBudget.slotsPerLayer refuses such a budget first
            throw new IllegalArgumentException(capacity + " slots cannot hold " + minCopies + " copies of each of "
                    + experts + " experts on " + n + " instances");
        }
        this.coSum = new double[n][experts];
        this.copies = new int[experts];
        this.prevAff = new double[n][experts];
        this.domains = domains;
        this.spread = new DomainSpread(domains, experts);
        if (prevHolds != null) {
            for (int i = 0; i < n; i++) {
                for (int a = 0; a < transitionsIn.length; a++) {
                    if (prevHolds[i][a]) {
                        double[] row = transitionsIn[a];
                        for (int b = 0; b < experts; b++) {
                            prevAff[i][b] += AffinityPlanner.INTER_LAYER_WEIGHT * row[b];
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
        // The replicas first: every expert keeps minCopies whatever its traffic (an expert idle in the window is not
        // idle for good, and its one copy would go with its instance); only the slots left over follow the load.
        java.util.Arrays.fill(copies, minCopies);
        for (int spare = capacity - experts * minCopies; spare > 0; spare--) {
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
        cap = Math.max(total / n * (1 + AffinityPlanner.LOAD_TOLERANCE), hottest);
        for (int[] item : items) {
            placeGreedy(item[0]);
        }
        repairSpread();
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
        if (best >= 0 && spread.inDomainOf(best, e) > 0 && spread.missesADomain(e)) {
            // Every free slot is in a domain that holds e already, while a domain without it is full.
            int room = makeRoomInDomain(e);
            best = room >= 0 ? room : best;
        }
        if (best < 0) {
            best = makeRoom(e);
        }
        int free = freeSlot(best);
        put(free, e, w);
    }

    /** Whether instance i (within the cap or not) beats the best so far for expert e. */
    private boolean better(int i, boolean fits, int best, boolean bestFits, int e) {
        int inDomain = spread.inDomainOf(i, e);
        int bestInDomain = spread.inDomainOf(best, e);
        if (inDomain != bestInDomain) {
            return inDomain < bestInDomain; // a copy in a domain without one first: availability before balance
        }
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
        // First a j in a domain without e, then any j, each by a move that keeps x's domains; then any move
        // (copies ≤ N: there always is one).
        for (int pass = 0; pass < 3; pass++) {
            for (int i = 0; i < n; i++) {
                if (instCount[i] == s) {
                    continue;
                }
                for (int j = 0; j < n; j++) {
                    if (holds[j][e] || pass == 0 && spread.inDomainOf(j, e) > 0) {
                        continue;
                    }
                    int k = movableTo(j, i, pass < 2);
                    if (k >= 0) {
                        move(k, i);
                        return j;
                    }
                }
            }
        }
        throw new IllegalStateException("no room for expert " + e); // unreachable: copies ≤ N, N × S ≥ copies
    }

    /**
     * Free instances hold e's domains only, while some domain without e has full instances only: moves an expert
     * x from a full instance j of such a domain to a free instance i (where x keeps the domains it spans), so that
     * e's copy can go to j. Returns j, or -1 when no such move exists (the copy then shares a domain).
     */
    private int makeRoomInDomain(int e) {
        for (int j = 0; j < n; j++) {
            if (instCount[j] < s || holds[j][e] || spread.inDomainOf(j, e) > 0) {
                continue;
            }
            for (int i = 0; i < n; i++) {
                if (instCount[i] == s) {
                    continue;
                }
                int k = movableTo(j, i, true);
                if (k >= 0) {
                    move(k, i);
                    return j;
                }
            }
        }
        return -1;
    }

    /** A slot of instance j whose expert may move to instance i (keeping its domains if asked), or -1. */
    private int movableTo(int j, int i, boolean keepDomains) {
        for (int k = j * s; k < (j + 1) * s; k++) {
            int x = slot[k];
            if (x >= 0 && !holds[i][x] && (!keepDomains || spread.canMove(x, j, i))) {
                return k;
            }
        }
        return -1;
    }

    private void move(int k, int i) {
        int x = slot[k];
        double w = share[k];
        remove(k);
        put(freeSlot(i), x, w);
    }

    private int freeSlot(int i) {
        for (int k = i * s; k < (i + 1) * s; k++) {
            if (slot[k] == EMPTY) {
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
        spread.add(i, e);
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
        spread.remove(i, e);
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

    /**
     * Whether slots p and q (on different instances) may swap: neither instance gets an expert twice, and neither
     * expert comes to span fewer failure domains.
     */
    private boolean swappable(int p, int q) {
        int i = p / s;
        int j = q / s;
        int ep = slot[p];
        int eq = slot[q];
        return ep != eq && ep != RESERVED && eq != RESERVED && (ep < 0 || !holds[j][ep] && spread.canMove(ep, i, j))
                && (eq < 0 || !holds[i][eq] && spread.canMove(eq, j, i));
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

    /**
     * The greedy packing's safety net for failure domains: while an expert spans fewer domains than it could, swaps
     * one of its copies in a domain holding two of them with a slot (an expert that keeps its own domains, or a
     * free one) in a domain without it, the swap leaving the pair least loaded. Stops when no such swap is left:
     * then the copies share a domain. Nothing to do when every instance is its own domain.
     */
    private void repairSpread() {
        for (int round = 0; round < n * s; round++) {
            int bestP = -1;
            int bestQ = -1;
            double bestMax = Double.MAX_VALUE;
            for (int e = 0; e < experts && bestP < 0; e++) {
                if (!spread.underSpread(e)) {
                    continue;
                }
                for (int p = 0; p < n * s; p++) {
                    int i = p / s;
                    if (slot[p] != e || spread.inDomainOf(i, e) < 2) {
                        continue;
                    }
                    for (int q = 0; q < n * s; q++) {
                        int j = q / s;
                        int x = slot[q];
                        if (x == RESERVED || spread.inDomainOf(j, e) > 0
                                || x >= 0 && (holds[i][x] || !spread.canMove(x, j, i))) {
                            continue;
                        }
                        double newMax = Math.max(instLoad[i] - share[p] + share[q],
                                instLoad[j] - share[q] + share[p]);
                        if (newMax < bestMax - EPS) {
                            bestMax = newMax;
                            bestP = p;
                            bestQ = q;
                        }
                    }
                }
            }
            if (bestP < 0) {
                return;
            }
            swap(bestP, bestQ);
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
        spread = DomainSpread.of(domains, experts, slot, s);
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
