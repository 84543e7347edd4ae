package io.moemesh.model.engine;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Micro-batches of sequences with similar predicted expert paths: ExpertFlow's token scheduling (He et al. 2024,
 * "ExpertFlow: Optimized Expert Activation and Token Allocation for Efficient Mixture-of-Experts Inference",
 * arXiv 2410.17954: a routing-path predictor, and a scheduler that batches tokens with similar predicted routes so
 * that each batch activates fewer experts), on the ping-pong micro-batches of {@link MicroBatching}. Fewer distinct
 * experts in a micro-batch's layer means fewer expert-services called (fewer hops) and fewer expert GEMMs.
 *
 * <p><b>Predictor</b>: a sequence's path in its previous step, the set of (layer, expert) pairs its rows were
 * routed to there (for a decode, the previous token's path; for a prefill chunk, the union over its rows), seen
 * through the engine's route observer. ExpertFlow trains a transformer that predicts a token's whole path; we use
 * token-level locality instead, which costs nothing and needs no network call on the decode path: the path of
 * the next step is known at the start of the step, before any layer runs (the engine's lookahead comes one layer
 * early, too late to choose a micro-batch). Consecutive tokens of a sequence reuse many of the same experts (the
 * routing traces measure it: docs/performance.md), and the grouping is only as good as that reuse. A sequence the
 * grouping has no path for (new, or absent from the previous step) is "unknown". Only the sequences of the last
 * observed step are remembered, so the state is bounded by the batch.
 *
 * <p><b>Assignment</b> ({@link #assign}, deterministic, ties to the lower index): prefill chunks (more than one row)
 * first, longest first, each to the micro-batch with the fewest rows; then the decode rows fill every micro-batch
 * up to a balanced size (with only decodes: exactly the contiguous split's sizes, so the 4-row alignment of
 * {@link MicroBatching} holds; otherwise rows per micro-batch differ by at most max(1, the longest chunk's rows));
 * each micro-batch without a known path yet is seeded, in order, by the known decode with the most pairs outside
 * the seeds so far; then, repeatedly, the (decode, micro-batch with room) pair adding the fewest new pairs to that
 * micro-batch's set is taken; unknown decodes last, in batch order, into the lowest micro-batch with room. Within a
 * micro-batch the sequences keep batch order; every micro-batch gets at least one sequence. A step where no path
 * is known keeps the contiguous split.
 *
 * <p>Results: the engine computes the same rows in another order, so tokens are those of the contiguous split and
 * of one batch (the grouped experts' last bits may differ within the bound of batching: docs/engine.md). Cost: the
 * assignment is O(n² · micro-batches · path words) for n decodes, and a grouped step allocates its context.
 */
public final class PredictedPathGrouping implements MicroBatchGrouping {
    private final int layers;
    private final int experts;
    private final int words;
    /** Each sequence of the last observed step: its (layer, expert) bits in that step. */
    private Map<Long, long[]> paths = new HashMap<>();
    private Map<Long, long[]> spare = new HashMap<>();
    /** The step being observed and its sequences' bits by index in it. */
    private StepContext observing;
    private long[][] current = new long[0][];

    public PredictedPathGrouping(int layers, int experts) {
        if (layers < 1 || experts < 1) {
            throw new IllegalArgumentException("layers and experts must be >= 1, got " + layers + " and " + experts);
        }
        this.layers = layers;
        this.experts = experts;
        this.words = (layers * experts + 63) / 64;
    }

    @Override
    public RouteObserver observing(RouteObserver routes) {
        return (step, layer, routed, weights, pairs) -> {
            routes.onRoutes(step, layer, routed, weights, pairs);
            learn(step, layer, routed, pairs);
        };
    }

    /** Records the step's routes at one layer: routed experts only (the shared expert joins every token). */
    void learn(StepContext step, int layer, int[] routed, int pairs) {
        if (layer < 0 || layer >= layers) {
            return;
        }
        if (step != observing || layer == 0) {
            startStep(step);
        }
        for (int r = 0; r < step.rows(); r++) {
            long[] bits = current[step.sequenceIndex(r)];
            for (int j = 0; j < pairs; j++) {
                int e = routed[r * pairs + j];
                if (e >= 0 && e < experts) {
                    int bit = layer * experts + e;
                    bits[bit >>> 6] |= 1L << bit;
                }
            }
        }
    }

    /** A new step: its sequences' paths start empty (reusing their arrays); sequences not in it are forgotten. */
    private void startStep(StepContext step) {
        observing = step;
        List<SequenceStep> seqs = step.sequences();
        if (current.length < seqs.size()) {
            current = new long[seqs.size()][];
        }
        spare.clear();
        for (int i = 0; i < seqs.size(); i++) {
            long id = seqs.get(i).seqId();
            long[] bits = paths.remove(id);
            if (bits == null) {
                bits = new long[words];
            } else {
                Arrays.fill(bits, 0);
            }
            spare.put(id, bits);
            current[i] = bits;
        }
        Map<Long, long[]> swap = paths;
        paths = spare;
        spare = swap;
    }

    /** The predicted path of a sequence (its bits in the last observed step), or null when unknown. */
    long[] predicted(long seqId) {
        return paths.get(seqId);
    }

    @Override
    public Groups group(List<SequenceStep> batch, int[] cuts) {
        int n = batch.size();
        int[] rows = new int[n];
        long[][] predicted = new long[n][];
        boolean known = false;
        for (int i = 0; i < n; i++) {
            rows[i] = batch.get(i).tokens().length;
            predicted[i] = paths.get(batch.get(i).seqId());
            known |= predicted[i] != null;
        }
        if (!known) {
            return null;
        }
        int parts = cuts.length - 1;
        int[] sizes = new int[parts];
        for (int m = 0; m < parts; m++) {
            for (int i = cuts[m]; i < cuts[m + 1]; i++) {
                sizes[m] += rows[i];
            }
        }
        return groups(assign(rows, predicted, sizes));
    }

    /** The groups of an assignment (micro-batch of each sequence): micro-batches in order, batch order within. */
    static Groups groups(int[] group) {
        int parts = 0;
        for (int g : group) {
            parts = Math.max(parts, g + 1);
        }
        int[] order = new int[group.length];
        int[] cuts = new int[parts + 1];
        int k = 0;
        for (int m = 0; m < parts; m++) {
            for (int i = 0; i < group.length; i++) {
                if (group[i] == m) {
                    order[k++] = i;
                }
            }
            cuts[m + 1] = k;
        }
        return new Groups(order, cuts);
    }

    /**
     * The micro-batch of each sequence (the class comment says how). {@code rows[i]} is sequence i's rows (≥ 1),
     * {@code paths[i]} its predicted (layer·experts + expert) bits or null when unknown, {@code sizes} the
     * contiguous split's rows per micro-batch (their number is the micro-batches'; each size the target when the
     * step is all decodes). Every micro-batch gets at least one sequence when there are at least as many sequences.
     */
    public static int[] assign(int[] rows, long[][] paths, int[] sizes) {
        int n = rows.length;
        int parts = sizes.length;
        if (parts < 1 || parts > n || paths.length != n) {
            throw new IllegalArgumentException("need 1 to " + n + " micro-batches and a path (or null) per sequence, got "
                    + parts + " and " + paths.length);
        }
        int[] group = new int[n];
        Arrays.fill(group, -1);
        long[] load = new long[parts];
        int[] cap = new int[parts];
        int singles = 0;
        // Prefill chunks by LPT: longest first (ties: lower index), each to the least loaded micro-batch.
        Integer[] byRows = new Integer[n];
        for (int i = 0; i < n; i++) {
            byRows[i] = i;
            if (rows[i] < 1) {
                throw new IllegalArgumentException("sequence " + i + " has " + rows[i] + " rows");
            }
            singles += rows[i] == 1 ? 1 : 0;
        }
        Arrays.sort(byRows, (a, b) -> rows[a] != rows[b] ? Integer.compare(rows[b], rows[a]) : Integer.compare(a, b));
        for (int i : byRows) {
            if (rows[i] > 1) {
                int g = argmin(load, cap);
                group[i] = g;
                load[g] += rows[i];
            }
        }
        if (singles == n) {
            // Only decodes: the contiguous split's sizes (cuts at multiples of 4 rows where it found them).
            System.arraycopy(sizes, 0, cap, 0, parts);
        } else {
            for (int d = 0; d < singles; d++) {
                cap[argmin(load, cap)]++;
            }
        }
        long[][] sets = new long[parts][];
        int words = 0;
        for (long[] p : paths) {
            words = p == null ? words : Math.max(words, p.length);
        }
        for (int g = 0; g < parts; g++) {
            sets[g] = new long[words];
        }
        boolean[] seeded = new boolean[parts];
        for (int i = 0; i < n; i++) {
            if (group[i] >= 0 && paths[i] != null) {
                or(sets[group[i]], paths[i]);
                seeded[group[i]] = true;
            }
        }
        // Seeds: an empty micro-batch starts from the known decode most unlike the seeds so far.
        long[] union = new long[words];
        for (int g = 0; g < parts; g++) {
            if (seeded[g]) {
                or(union, sets[g]);
            }
        }
        for (int g = 0; g < parts; g++) {
            if (seeded[g] || cap[g] == 0) {
                continue;
            }
            int best = -1;
            int bestNew = -1;
            for (int i = 0; i < n; i++) {
                if (group[i] < 0 && rows[i] == 1 && paths[i] != null) {
                    int fresh = added(paths[i], union);
                    if (fresh > bestNew) {
                        best = i;
                        bestNew = fresh;
                    }
                }
            }
            if (best < 0) {
                break;
            }
            put(best, g, group, cap, sets, paths);
            or(union, paths[best]);
        }
        // Greedy: the (decode, micro-batch with room) pair adding the fewest new pairs.
        while (true) {
            int bestI = -1;
            int bestG = -1;
            int bestAdded = Integer.MAX_VALUE;
            for (int i = 0; i < n; i++) {
                if (group[i] >= 0 || paths[i] == null) {
                    continue;
                }
                for (int g = 0; g < parts; g++) {
                    if (cap[g] > 0) {
                        int a = added(paths[i], sets[g]);
                        if (a < bestAdded) {
                            bestI = i;
                            bestG = g;
                            bestAdded = a;
                        }
                    }
                }
            }
            if (bestI < 0) {
                break;
            }
            put(bestI, bestG, group, cap, sets, paths);
        }
        // Unknown decodes in batch order, into the lowest micro-batch with room.
        for (int i = 0; i < n; i++) {
            if (group[i] < 0) {
                int g = 0;
                while (cap[g] == 0) {
                    g++;
                }
                group[i] = g;
                cap[g]--;
            }
        }
        return group;
    }

    private static void put(int i, int g, int[] group, int[] cap, long[][] sets, long[][] paths) {
        group[i] = g;
        cap[g]--;
        if (paths[i] != null) {
            or(sets[g], paths[i]);
        }
    }

    /** The micro-batch with the fewest rows so far (assigned plus room), ties to the lower index. */
    private static int argmin(long[] load, int[] cap) {
        int best = 0;
        for (int g = 1; g < load.length; g++) {
            if (load[g] + cap[g] < load[best] + cap[best]) {
                best = g;
            }
        }
        return best;
    }

    /** Pairs of {@code path} not in {@code set}. */
    private static int added(long[] path, long[] set) {
        int a = 0;
        for (int w = 0; w < path.length; w++) {
            a += Long.bitCount(path[w] & ~(w < set.length ? set[w] : 0L));
        }
        return a;
    }

    private static void or(long[] into, long[] bits) {
        for (int w = 0; w < bits.length; w++) {
            into[w] |= bits[w];
        }
    }
}
