package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * Which sequences of a step that {@link MicroBatching} splits share a micro-batch, chosen by name
 * ({@link MicroBatching#grouping()}, the gateway's {@code moemesh.gateway.micro-batch-grouping}):
 *
 * <ul>
 *   <li>{@value #CONTIGUOUS} (the default): the split's contiguous runs of the batch, as they are;</li>
 *   <li>{@value #PREDICTED_PATH}: {@link PredictedPathGrouping}, sequences whose predicted expert paths are alike
 *       in the same micro-batch (ExpertFlow's token scheduling, He et al. 2024), so each micro-batch's layer calls
 *       fewer distinct experts and instances.</li>
 * </ul>
 *
 * <p>An instance belongs to one engine ({@link #named} makes a new one per engine): it may learn from the routes
 * of the engine's steps ({@link #observing}), and the engine calls it on its own thread only.
 */
public interface MicroBatchGrouping {
    String CONTIGUOUS = "contiguous";
    String PREDICTED_PATH = "predicted-path";
    /** The names configuration may choose. */
    List<String> NAMES = List.of(CONTIGUOUS, PREDICTED_PATH);

    /** A new grouping of that name for an engine of that model; an unknown name is refused naming the choices. */
    static MicroBatchGrouping named(String name, ModelConfig config) {
        return switch (MicroBatching.checkedGrouping(name)) {
            case PREDICTED_PATH -> new PredictedPathGrouping(config.numLayers(), config.numExperts());
            default -> (batch, cuts) -> null;
        };
    }

    /**
     * The micro-batches of a step that {@link MicroBatching#split} cut at {@code cuts} (at least two micro-batches;
     * their number is kept), or null to keep that contiguous split.
     */
    Groups group(List<SequenceStep> batch, int[] cuts);

    /** The observer the engine calls: {@code routes}, plus whatever this grouping learns from (default: nothing). */
    default RouteObserver observing(RouteObserver routes) {
        return routes;
    }

    /**
     * A step's micro-batches: micro-batch m is the batch's sequences {@code order[cuts[m]] .. order[cuts[m+1] − 1]}
     * (a permutation of the batch indices: every sequence exactly once). The engine runs the step in this order
     * and hands its outputs back in batch order ({@link #restore}).
     */
    record Groups(int[] order, int[] cuts) {
        public Groups {
            boolean[] seen = new boolean[order.length];
            for (int i : order) {
                if (i < 0 || i >= order.length || seen[i]) {
                    throw new IllegalArgumentException("micro-batch order " + java.util.Arrays.toString(order)
                            + " is not a permutation of the batch");
                }
                seen[i] = true;
            }
            if (cuts.length < 2 || cuts[0] != 0 || cuts[cuts.length - 1] != order.length) {
                throw new IllegalArgumentException("micro-batch cuts " + java.util.Arrays.toString(cuts)
                        + " do not span the batch of " + order.length);
            }
            for (int m = 1; m < cuts.length; m++) {
                if (cuts[m] <= cuts[m - 1]) {
                    throw new IllegalArgumentException("micro-batch " + (m - 1) + " is empty");
                }
            }
        }

        /** The step's context in micro-batch order: what the engine computes, observers and dispatch see. */
        StepContext context(List<SequenceStep> batch) {
            List<SequenceStep> grouped = new ArrayList<>(order.length);
            for (int i : order) {
                grouped.add(batch.get(i));
            }
            return StepContext.of(grouped);
        }

        /** Outputs in micro-batch order back to batch order. */
        List<StepOutput> restore(List<StepOutput> grouped) {
            StepOutput[] out = new StepOutput[order.length];
            for (int k = 0; k < order.length; k++) {
                out[order[k]] = grouped.get(k);
            }
            return new ArrayList<>(java.util.Arrays.asList(out));
        }
    }
}
