package io.moemesh.model.engine;

import java.util.List;

/**
 * How the engine splits a step into micro-batches whose expert hops overlap each other's attention and dense
 * work: MegaScale-Infer's ping-pong pipeline (Zhu et al. 2025, "MegaScale-Infer: Serving Mixture-of-Experts at
 * Scale with Disaggregated Expert Parallelism", §4), here on the engine's one thread: per layer, micro-batch A's
 * attention and gate, then A's experts are sent ({@link ExpertDispatch#start}), then B's attention and gate while
 * A's are away, B's experts sent, then A's awaited and A's next layer, and so on (docs/engine.md).
 *
 * <p>A split is contiguous in batch order and never cuts a sequence (a prefill chunk's rows attend causally to
 * each other, so they stay together), each micro-batch gets at least one sequence, and the cuts balance rows:
 * cut k goes at the sequence boundary nearest to k·rows/M, preferring a boundary at a multiple of 4 rows within
 * about 2 rows of it. Why 4: the GEMM kernels compute rows in tiles of 4 and a remainder, and a row's sum is
 * ordered by which of the two it falls in, so with cuts at multiples of 4 every row of the dense part sits where
 * it would in the whole batch and gets the same bits (docs/engine.md says what may still differ).
 *
 * <p>Which sequences share a micro-batch is the {@link MicroBatchGrouping} named by {@code grouping}: this
 * contiguous split as is ({@value MicroBatchGrouping#CONTIGUOUS}), or sequences with similar predicted expert
 * paths together ({@value MicroBatchGrouping#PREDICTED_PATH}, {@link PredictedPathGrouping}), with the same
 * number of micro-batches.
 *
 * <p>Splitting costs expert weight traffic: a micro-batch's layer reads every expert it routes to once, whatever
 * its row count, so M micro-batches of a decode step read the routed experts' weights M times where one batch
 * reads them once, and an expert GEMM with few rows is bound by that read, not by its multiply-adds. MegaScale-Infer
 * sizes its micro-batches so that each expert still gets enough tokens to stay compute-bound (Zhu et al. 2025,
 * §4). {@code minExpertRows} is that floor: a step is split into only as many micro-batches as keep at least
 * that many rows per routed expert on average, {@code rows · top_k ÷ (micro-batches · experts)} ({@link
 * #split(List, int, int)}), one batch if not even two do. Measured on 2 shared cores (docs/performance.md):
 * halving a 32-sequence decode step of an 8-expert top-2 model (8 → 4 rows per expert) made the expert-services
 * spend 1.5× the CPU per token.
 *
 * @param count         micro-batches per step at most (1 = off: the step runs as one batch, exactly as without)
 * @param minRows       a step with fewer rows runs as one batch (at least 2: one row cannot be split)
 * @param grouping      the {@link MicroBatchGrouping} by name, one of {@link MicroBatchGrouping#NAMES}
 * @param minExpertRows rows per routed expert that each micro-batch must keep on average (0 = no such floor)
 */
public record MicroBatching(int count, int minRows, String grouping, int minExpertRows) {
    /** One batch per step. */
    public static final MicroBatching OFF = new MicroBatching(1, 2);

    /** Contiguous micro-batches, no rows-per-expert floor. */
    public MicroBatching(int count, int minRows) {
        this(count, minRows, MicroBatchGrouping.CONTIGUOUS);
    }

    /** No rows-per-expert floor. */
    public MicroBatching(int count, int minRows, String grouping) {
        this(count, minRows, grouping, 0);
    }

    public MicroBatching {
        checkedGrouping(grouping);
        if (count < 1) {
            throw new IllegalArgumentException("micro-batches must be >= 1 (1 = off), got " + count);
        }
        if (minRows < 2) {
            throw new IllegalArgumentException("micro-batch min rows must be >= 2, got " + minRows);
        }
        if (minExpertRows < 0) {
            throw new IllegalArgumentException("micro-batch min expert rows must be >= 0 (0 = none), got "
                    + minExpertRows);
        }
    }

    /** The name if it is one of {@link MicroBatchGrouping#NAMES}; else refused naming the choices. */
    static String checkedGrouping(String name) {
        if (name == null || !MicroBatchGrouping.NAMES.contains(name)) {
            throw new IllegalArgumentException("micro-batch grouping must be one of " + MicroBatchGrouping.NAMES
                    + ", got " + (name == null ? "nothing" : "'" + name + "'"));
        }
        return name;
    }

    /**
     * Where the step's micro-batches start: {@code cuts[i]} is the index in {@code sequences} of micro-batch i's
     * first sequence, {@code cuts[n]} = sequences.size(); one micro-batch ({@code {0, size}}) when the step has
     * fewer than {@link #minRows} rows, a single sequence, or {@link #count} is 1. Ignores {@link #minExpertRows}
     * (it needs the model's routing: {@link #split(List, int, int)}).
     */
    public int[] split(List<SequenceStep> sequences) {
        return split(sequences, 0, 0);
    }

    /**
     * As {@link #split(List)}, into at most as many micro-batches as keep {@link #minExpertRows} rows per routed
     * expert on average: the largest {@code m <= count} with {@code rows · topK >= minExpertRows · m · experts}.
     *
     * @param topK    experts each row is routed to (the shared expert of Qwen2-MoE not counted: it gets every row)
     * @param experts routed experts per layer (0: unknown, no floor applies)
     */
    public int[] split(List<SequenceStep> sequences, int topK, int experts) {
        int n = sequences.size();
        int[] before = new int[n + 1];
        for (int i = 0; i < n; i++) {
            before[i + 1] = before[i] + sequences.get(i).tokens().length;
        }
        int rows = before[n];
        int parts = Math.min(count, n);
        // experts = 0: the routing is not known (split(List)), so no floor applies.
        while (experts > 0 && parts >= 2 && (long) rows * topK < (long) minExpertRows * parts * experts) {
            parts--;
        }
        if (parts < 2 || rows < minRows) {
            return new int[] {0, n};
        }
        int[] cuts = new int[parts + 1];
        cuts[parts] = n;
        for (int k = 1; k < parts; k++) {
            double target = (double) k * rows / parts;
            // Leave at least one sequence for this micro-batch and for each one after it.
            int lo = cuts[k - 1] + 1;
            int hi = n - (parts - k);
            int best = lo;
            double bestScore = Double.MAX_VALUE;
            for (int b = lo; b <= hi; b++) {
                double score = Math.abs(before[b] - target) + (before[b] % 4 == 0 ? 0 : 2.5);
                if (score < bestScore) {
                    best = b;
                    bestScore = score;
                }
            }
            cuts[k] = best;
        }
        return cuts;
    }
}
