package io.moemesh.router.prediction;

import io.moemesh.router.trace.TokenRoute;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * The count tables the predictors read, updated by every learned token: per-layer expert frequency (and the
 * order experts were first seen, for relabel-proof tie-breaks), inter-layer co-activation (expert e at layer j
 * and x at layer l > j in one token: the affinity of ExFlow and the transitions of Pre-gated MoE), expert
 * frequency per token id and per previous token id (Read-ME's decoupled, token-conditioned router), and the
 * temporal table (the previous token of the sequence had e at layer l, this one x at l). Sizes: layers² ×
 * experts² ints for co-activation, which is 262k for FLAME-MoE and 65k for Mixtral.
 *
 * <p>The int tables are never reset and a hot expert's row grows by top-k with every token the router learns: at fleet
 * rates a total would pass 2^31 in about a day and wrap negative, turning the conditional distributions into garbage.
 * So when a total reaches the bound ({@link #DEFAULT_HALVING_BOUND}), every count of its table block is halved (the
 * co-activation block of that layer pair, the temporal block of that layer, the one row of a per-token table), the
 * totals recomputed as the sums they are. Halving rather than long counters: the co-activation table is the router's
 * largest (layers² × experts²), which longs would double, and halving keeps the predictors adaptive, the older
 * traffic weighing half as much each time (an exponential forgetting on the scale of a day at fleet rates), where
 * longs would let months of old traffic outvote a shift in the routes. The ratios within a block survive the halving
 * up to rounding (a count of 1 becomes 0: the rarest pairs are forgotten first).
 */
final class RouteCounts {
    /** A count table total that triggers the halving of its block: half of int's range, so no add overflows first. */
    static final int DEFAULT_HALVING_BOUND = 1 << 30;

    private final ModelShape shape;
    private final int layers;
    private final int experts;
    private final long[] popularity;
    private final long[] popularityTotal;
    private final int[] firstSeen;
    private final int[] seenAtLayer;
    private final int[] pair;
    private final int[] pairTotal;
    /**
     * Bytes the per-token tables may take, both maps together: each token id seen gets layers × (experts + 1) ints in
     * each map (11.4 KiB for Qwen1.5-MoE), so all of a 152k vocabulary would take 1.8 GB, more than the router's heap;
     * 72 MiB hold every id of a 32k vocabulary for Mixtral (1,152 bytes a table).
     */
    static final long TOKEN_TABLE_BUDGET_BYTES = 72L << 20;

    private final Map<Integer, int[]> byToken = new HashMap<>();
    private final Map<Integer, int[]> byPreviousToken = new HashMap<>();
    /** Token ids each per-token map holds at most; ids first seen past it are not tracked (frequent ids come early). */
    private final int maxTokenTables;
    private final int[] temporal;
    private final int[] temporalTotal;
    /** A total at or above it halves its block. */
    private final int halvingBound;

    RouteCounts(ModelShape shape) {
        this(shape, TOKEN_TABLE_BUDGET_BYTES);
    }

    /** @param tokenTableBudgetBytes bytes the per-token tables may take, both maps together (at least one id each) */
    RouteCounts(ModelShape shape, long tokenTableBudgetBytes) {
        this(shape, tokenTableBudgetBytes, DEFAULT_HALVING_BOUND);
    }

    /**
     * @param halvingBound a table total at or above it halves the counts of its block, in [top-k, 2^30] (tests use
     *                     small ones; larger would let one add overflow)
     */
    RouteCounts(ModelShape shape, long tokenTableBudgetBytes, int halvingBound) {
        if (halvingBound < shape.topK() || halvingBound > DEFAULT_HALVING_BOUND) {
            throw new IllegalArgumentException("halving bound must be in [" + shape.topK() + ", "
                    + DEFAULT_HALVING_BOUND + "], got " + halvingBound);
        }
        this.halvingBound = halvingBound;
        this.shape = shape;
        this.maxTokenTables = (int) Math.clamp(tokenTableBudgetBytes / 2 / (4L * shape.layers() * (shape.experts() + 1)),
                1, Integer.MAX_VALUE);
        this.layers = shape.layers();
        this.experts = shape.experts();
        popularity = new long[layers * experts];
        popularityTotal = new long[layers];
        firstSeen = new int[layers * experts];
        Arrays.fill(firstSeen, Integer.MAX_VALUE);
        seenAtLayer = new int[layers];
        pair = new int[layers * layers * experts * experts];
        pairTotal = new int[layers * layers * experts];
        temporal = new int[layers * experts * experts];
        temporalTotal = new int[layers * experts];
    }

    ModelShape shape() {
        return shape;
    }

    /** Counts the observed routes of {@code token}, whose sequence's previous token is {@code previous} (or null). */
    void add(TokenRoute token, TokenRoute previous) {
        int[][] routes = token.experts();
        if (routes.length != layers) {
            throw new IllegalArgumentException("token " + token.key() + " has " + routes.length
                    + " layer entries, the model " + layers);
        }
        int[] ofToken = token.tokenId() >= 0 ? table(byToken, token.tokenId()) : null;
        int[] ofPrevious = previous != null && previous.tokenId() >= 0 ? table(byPreviousToken, previous.tokenId())
                : null;
        for (int l = 0; l < layers; l++) {
            if (routes[l] == null) {
                continue;
            }
            for (int x : routes[l]) {
                if (x < 0 || x >= experts) {
                    throw new IllegalArgumentException("token " + token.key() + " layer index " + l + ": expert " + x
                            + " is out of range 0.." + (experts - 1));
                }
                popularity[l * experts + x]++;
                if (firstSeen[l * experts + x] == Integer.MAX_VALUE) {
                    firstSeen[l * experts + x] = seenAtLayer[l]++;
                }
            }
            popularityTotal[l] += routes[l].length;
            for (int j = 0; j < l; j++) {
                if (routes[j] == null) {
                    continue;
                }
                boolean full = false;
                for (int e : routes[j]) {
                    int base = ((j * layers + l) * experts + e);
                    pairTotal[base] += routes[l].length;
                    for (int x : routes[l]) {
                        pair[base * experts + x]++;
                    }
                    full |= pairTotal[base] >= halvingBound;
                }
                if (full) {
                    halve(pair, pairTotal, (j * layers + l) * experts, experts);
                }
            }
            if (ofToken != null) {
                addTo(ofToken, l, routes[l]);
            }
            if (ofPrevious != null) {
                addTo(ofPrevious, l, routes[l]);
            }
            if (previous != null && previous.layers() == layers && previous.has(l)) {
                boolean full = false;
                for (int e : previous.experts()[l]) {
                    temporalTotal[l * experts + e] += routes[l].length;
                    for (int x : routes[l]) {
                        temporal[(l * experts + e) * experts + x]++;
                    }
                    full |= temporalTotal[l * experts + e] >= halvingBound;
                }
                if (full) {
                    halve(temporal, temporalTotal, l * experts, experts);
                }
            }
        }
    }

    /** The table of {@code tokenId}, made while the map is under its cap; null past it. */
    private int[] table(Map<Integer, int[]> tables, int tokenId) {
        int[] t = tables.get(tokenId);
        if (t == null && tables.size() < maxTokenTables) {
            t = new int[layers * (experts + 1)];
            tables.put(tokenId, t);
        }
        return t;
    }

    /** Token ids with a table of their own (this token's, previous token's). */
    int trackedTokens(boolean previousToken) {
        return (previousToken ? byPreviousToken : byToken).size();
    }

    private void addTo(int[] table, int l, int[] routes) {
        int base = l * (experts + 1);
        for (int x : routes) {
            table[base + x]++;
        }
        table[base + experts] += routes.length;
        if (table[base + experts] >= halvingBound) {
            int sum = 0;
            for (int x = 0; x < experts; x++) {
                table[base + x] >>= 1;
                sum += table[base + x];
            }
            table[base + experts] = sum;
        }
    }

    /**
     * Halves the {@code rows} rows of {@code experts} counts from row {@code firstRow} of {@code counts}, each row's
     * total in {@code totals} recomputed as its sum.
     */
    private void halve(int[] counts, int[] totals, int firstRow, int rows) {
        for (int r = firstRow; r < firstRow + rows; r++) {
            int sum = 0;
            for (int x = 0; x < experts; x++) {
                counts[r * experts + x] >>= 1;
                sum += counts[r * experts + x];
            }
            totals[r] = sum;
        }
    }

    /**
     * Refuses a target layer out of range or a context that knows routes at or after it (that would not be a
     * prediction).
     */
    void checkTarget(PredictionContext context, int targetLayer) {
        if (targetLayer < 0 || targetLayer >= layers) {
            throw new IllegalArgumentException("target layer index must be 0.." + (layers - 1) + ", got "
                    + targetLayer);
        }
        if (context.known().length != layers) {
            throw new IllegalArgumentException("the context has " + context.known().length
                    + " layer entries, the model " + layers);
        }
        if (context.lastKnownLayer() >= targetLayer) {
            throw new IllegalArgumentException("the context knows layer index " + context.lastKnownLayer()
                    + ", not before the target " + targetLayer);
        }
    }

    /** Raw frequency of each expert at layer {@code l} into {@code out}. */
    void popularityCounts(int l, double[] out) {
        for (int x = 0; x < experts; x++) {
            out[x] = popularity[l * experts + x];
        }
    }

    /** The smoothed frequency distribution at layer {@code l} (add-one), into {@code out}. */
    void popularityDistribution(int l, double[] out) {
        double total = popularityTotal[l] + experts;
        for (int x = 0; x < experts; x++) {
            out[x] = (popularity[l * experts + x] + 1) / total;
        }
    }

    /** Raw co-activation counts: Σ over {@code from} of tokens with e at layer j and x at layer l. */
    void pairCounts(int j, int[] from, int l, double[] out) {
        Arrays.fill(out, 0);
        for (int e : from) {
            int base = ((j * layers + l) * experts + e) * experts;
            for (int x = 0; x < experts; x++) {
                out[x] += pair[base + x];
            }
        }
    }

    /**
     * P(x at l | the experts {@code from} at layer j), the mean over {@code from} of each expert's conditional
     * distribution, each smoothed towards {@code prior} with {@code strength} pseudo-counts; into {@code out}.
     */
    void pairDistribution(int j, int[] from, int l, double[] prior, double strength, double[] out) {
        Arrays.fill(out, 0);
        for (int e : from) {
            int base = (j * layers + l) * experts + e;
            double total = pairTotal[base] + strength;
            for (int x = 0; x < experts; x++) {
                out[x] += (pair[base * experts + x] + strength * prior[x]) / total / from.length;
            }
        }
    }

    /** Like {@link #pairDistribution} from the previous token's experts at the same layer. */
    void temporalDistribution(int[] previous, int l, double[] prior, double strength, double[] out) {
        Arrays.fill(out, 0);
        for (int e : previous) {
            int base = l * experts + e;
            double total = temporalTotal[base] + strength;
            for (int x = 0; x < experts; x++) {
                out[x] += (temporal[base * experts + x] + strength * prior[x]) / total / previous.length;
            }
        }
    }

    /**
     * P(x at l | token id), smoothed towards {@code prior}, into {@code out}; false (and {@code out} untouched)
     * when the id is unknown (-1) or was never seen.
     */
    boolean tokenDistribution(int tokenId, boolean previousToken, int l, double[] prior, double strength,
                              double[] out) {
        int[] table = tokenId < 0 ? null : (previousToken ? byPreviousToken : byToken).get(tokenId);
        if (table == null) {
            return false;
        }
        int base = l * (experts + 1);
        double total = table[base + experts] + strength;
        if (table[base + experts] == 0) {
            return false;
        }
        for (int x = 0; x < experts; x++) {
            out[x] = (table[base + x] + strength * prior[x]) / total;
        }
        return true;
    }

    /**
     * The {@code n} experts with the highest {@code score} at layer {@code l}; ties go to the more frequent expert
     * at l, then to the one seen first there, and only among never-seen experts to the lower id.
     */
    int[] top(double[] score, int l, int n) {
        if (n < 1 || n > experts) {
            throw new IllegalArgumentException("n must be 1.." + experts + ", got " + n);
        }
        Integer[] order = new Integer[experts];
        for (int x = 0; x < experts; x++) {
            order[x] = x;
        }
        Arrays.sort(order, (a, b) -> {
            int c = Double.compare(score[b], score[a]);
            if (c == 0) {
                c = Long.compare(popularity[l * experts + b], popularity[l * experts + a]);
            }
            if (c == 0) {
                c = Integer.compare(firstSeen[l * experts + a], firstSeen[l * experts + b]);
            }
            return c != 0 ? c : Integer.compare(a, b);
        });
        int[] best = new int[n];
        for (int i = 0; i < n; i++) {
            best[i] = order[i];
        }
        return best;
    }
}
