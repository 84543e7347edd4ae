package io.moemesh.router.trace;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * One permutation of the expert ids per layer, applied alike to every trace of a model. Expert ids are arbitrary
 * labels, so a sound predictor's recall must not depend on them (issue 10: relabelling both files with one random
 * permutation per layer may change recall by at most 0.02); {@code router eval-predict --relabel-seed} uses this
 * to show it.
 *
 * @param permutations per layer index, {@code permutations[l][old] = new}
 */
public record Relabelling(int[][] permutations) {

    /** A random permutation of {@code experts} ids for each of {@code layers} layers, from {@code seed}. */
    public static Relabelling random(int layers, int experts, long seed) {
        Random random = new Random(seed);
        int[][] permutations = new int[layers][experts];
        for (int l = 0; l < layers; l++) {
            for (int i = 0; i < experts; i++) {
                permutations[l][i] = i;
            }
            for (int i = experts - 1; i > 0; i--) { // Fisher–Yates
                int j = random.nextInt(i + 1);
                int swap = permutations[l][i];
                permutations[l][i] = permutations[l][j];
                permutations[l][j] = swap;
            }
        }
        return new Relabelling(permutations);
    }

    /** {@code trace} with every expert id {@code e} at layer index {@code l} replaced by {@code permutations[l][e]}. */
    public RouteTrace apply(RouteTrace trace) {
        if (permutations.length != trace.layers() || permutations[0].length < trace.experts()) {
            throw new IllegalArgumentException(trace.source() + ": the relabelling is for " + permutations.length
                    + " layers of " + permutations[0].length + " experts, the trace has " + trace.layers() + " of "
                    + trace.experts());
        }
        List<TokenRoute> tokens = new ArrayList<>(trace.tokens().size());
        for (TokenRoute t : trace.tokens()) {
            int[][] experts = new int[t.layers()][];
            for (int l = 0; l < t.layers(); l++) {
                if (t.has(l)) {
                    experts[l] = new int[t.experts()[l].length];
                    for (int i = 0; i < experts[l].length; i++) {
                        experts[l][i] = permutations[l][t.experts()[l][i]];
                    }
                }
            }
            tokens.add(new TokenRoute(t.key(), t.tokenId(), experts, t.weights()));
        }
        return new RouteTrace(trace.source(), trace.firstLayer(), trace.layers(), trace.experts(), trace.topK(),
                tokens);
    }
}
