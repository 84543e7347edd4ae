package io.moemesh.router.prediction;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Synthetic routing traces with a known structure, for predictor tests. */
final class SyntheticTraces {

    private SyntheticTraces() {
    }

    /**
     * {@code tokens} full paths where a token's experts at layer l are a fixed random function of its experts at
     * layer l − {@code lag} (each expert e maps to {@code next[l][e]}), and uniformly random at the first
     * {@code lag} layers; with probability {@code noise} an expert is replaced by a random one. Token ids cycle
     * through {@code vocabulary} ids ({@code vocabulary} 0: -1, none). Keys "<seq>:<pos>", 8 tokens a sequence.
     */
    static RouteTrace lagged(long seed, int tokens, int layers, int experts, int topK, int lag, double noise,
                             int vocabulary) {
        Random structure = new Random(42);
        int[][] next = new int[layers][experts];
        for (int l = 0; l < layers; l++) {
            for (int e = 0; e < experts; e++) {
                next[l][e] = structure.nextInt(experts);
            }
        }
        Random random = new Random(seed);
        List<TokenRoute> routes = new ArrayList<>();
        for (int t = 0; t < tokens; t++) {
            int[][] e = new int[layers][];
            float[][] w = new float[layers][];
            for (int l = 0; l < layers; l++) {
                e[l] = new int[topK];
                w[l] = new float[topK];
                for (int i = 0; i < topK; i++) {
                    int candidate;
                    do {
                        candidate = l < lag || random.nextDouble() < noise ? random.nextInt(experts)
                                : next[l][e[l - lag][i]];
                        if (contains(e[l], i, candidate)) {
                            candidate = -1;
                            // a collision of the mapping: fall back to a random expert not yet chosen
                            int r;
                            do {
                                r = random.nextInt(experts);
                            } while (contains(e[l], i, r));
                            candidate = r;
                        }
                    } while (candidate < 0);
                    e[l][i] = candidate;
                    w[l][i] = 1f / (i + 2);
                }
            }
            routes.add(new TokenRoute((t / 8) + ":" + (t % 8), vocabulary == 0 ? -1 : t % vocabulary, e, w));
        }
        return new RouteTrace("synthetic-" + seed, 0, layers, experts, topK, routes);
    }

    private static boolean contains(int[] row, int before, int x) {
        for (int i = 0; i < before; i++) {
            if (row[i] == x) {
                return true;
            }
        }
        return false;
    }
}
