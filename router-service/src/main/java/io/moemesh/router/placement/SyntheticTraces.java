package io.moemesh.router.placement;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Routing traces with the structure the real ones show, for tests and {@code moemesh bench planner} (no real trace
 * may be copied into the repository): experts form groups that tokens use together (within-layer co-activation) and
 * a token stays in its group from layer to layer (inter-layer affinity; the group's members are relabelled per
 * layer, as real expert ids carry no meaning across layers); group popularity is skewed (Zipf, exponent 1), so some
 * experts are hot; a {@code noise} fraction of a token's choices is any expert.
 */
public final class SyntheticTraces {
    private SyntheticTraces() {
    }

    /**
     * @param groups experts are split into this many groups of {@code experts / groups} (at least top-k each)
     */
    public static RouteTrace clustered(int tokens, int layers, int experts, int topK, int groups, double noise, long seed) {
        if (groups < 1 || experts / groups < topK) {
            throw new IllegalArgumentException("groups must leave at least top-k experts in each, got " + groups);
        }
        SplittableRandom rnd = new SplittableRandom(seed);
        int size = experts / groups;
        int[][] perm = new int[layers][];
        for (int l = 0; l < layers; l++) {
            perm[l] = shuffled(experts, rnd);
        }
        double[] cumulative = new double[groups];
        double sum = 0;
        for (int g = 0; g < groups; g++) {
            sum += 1.0 / (g + 1);
            cumulative[g] = sum;
        }
        List<TokenRoute> routes = new ArrayList<>(tokens);
        for (int t = 0; t < tokens; t++) {
            double u = rnd.nextDouble() * sum;
            int group = 0;
            while (cumulative[group] < u) {
                group++;
            }
            int[][] es = new int[layers][];
            float[][] ws = new float[layers][];
            for (int l = 0; l < layers; l++) {
                int[] chosen = new int[topK];
                int c = 0;
                while (c < topK) {
                    int e = rnd.nextDouble() < noise ? rnd.nextInt(experts) : perm[l][group * size + rnd.nextInt(size)];
                    boolean dup = false;
                    for (int k = 0; k < c; k++) {
                        dup |= chosen[k] == e;
                    }
                    if (!dup) {
                        chosen[c++] = e;
                    }
                }
                es[l] = chosen;
                ws[l] = new float[topK];
                java.util.Arrays.fill(ws[l], 1f / topK);
            }
            routes.add(new TokenRoute(Integer.toString(t), t % 1000, es, ws));
        }
        return new RouteTrace("synthetic", 0, layers, experts, topK, routes);
    }

    private static int[] shuffled(int n, SplittableRandom rnd) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int x = p[i];
            p[i] = p[j];
            p[j] = x;
        }
        return p;
    }
}
