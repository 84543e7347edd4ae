package io.moemesh.router.placement;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;

/**
 * What a placement planner knows about the traffic: per MoE layer, how many (token, expert) pairs each expert
 * received, how often a token chose expert a and then, ranked below it, expert b (within-layer co-activation of its
 * top-k, ordered because the gateway places a token's experts best first: where b goes depends on where a went), and
 * how often a token went from expert a at one layer to expert b at the next (inter-layer transitions, ExFlow's
 * "expert affinity": Yao et al., "Exploiting Inter-Layer Expert Affinity for Accelerating Mixture-of-Experts Model
 * Inference", IPDPS 2024, arXiv:2401.08383).
 *
 * <p>Loads and co-activation count every row of the trace (a token's top-k at one layer does not need its other
 * layers); transitions count only tokens with routes at every layer (the trace's full paths), as every path
 * statistic of the router does.
 *
 * @param firstLayer   the layer number of layer index 0, as in the trace file (FLAME 2, Mixtral 0)
 * @param layers       MoE layers
 * @param experts      routed experts per layer
 * @param topK         experts per token per layer
 * @param load         [layer index][expert] (token, expert) pairs
 * @param coactivation [layer index][a][b] tokens that chose a and, ranked below a, b at that layer (zero diagonal;
 *                     {@code [a][b] + [b][a]} is how often the two were chosen together)
 * @param transitions  [layer index l][a][b] tokens that chose a at l and b at l + 1 ({@code layers - 1} entries)
 * @param rows         [layer index][row] a token's experts at that layer, best first, in trace order (every row),
 *                     so a planner can replay the gateway's replica rule; empty per layer when only counts are known
 */
public record RouteStats(int firstLayer, int layers, int experts, int topK, double[][] load, double[][][] coactivation,
                         double[][][] transitions, int[][][] rows) {

    public RouteStats {
        if (layers < 1 || experts < 1 || topK < 1 || topK > experts) {
            throw new IllegalArgumentException("route stats need ≥ 1 layer, ≥ 1 expert and 1 ≤ top-k ≤ experts");
        }
        if (load.length != layers || coactivation.length != layers || transitions.length != layers - 1
                || rows.length != layers) {
            throw new IllegalArgumentException("route stats need load and co-activation per layer and transitions per "
                    + "pair of consecutive layers (" + layers + " layers)");
        }
        for (int l = 0; l < layers; l++) {
            if (load[l].length != experts || coactivation[l].length != experts
                    || l < layers - 1 && transitions[l].length != experts) {
                throw new IllegalArgumentException("route stats layer index " + l + ": need " + experts + " experts");
            }
        }
    }

    /** Counts the routes of a trace. */
    public static RouteStats of(RouteTrace trace) {
        int layers = trace.layers();
        int experts = trace.experts();
        double[][] load = new double[layers][experts];
        double[][][] co = new double[layers][experts][experts];
        double[][][] tr = new double[Math.max(0, layers - 1)][experts][experts];
        java.util.List<java.util.List<int[]>> rows = new java.util.ArrayList<>();
        for (int l = 0; l < layers; l++) {
            rows.add(new java.util.ArrayList<>());
        }
        for (TokenRoute t : trace.tokens()) {
            boolean full = t.fullPath();
            for (int l = 0; l < layers; l++) {
                int[] es = t.experts()[l];
                if (es == null) {
                    continue;
                }
                rows.get(l).add(es.clone());
                for (int i = 0; i < es.length; i++) {
                    int a = check(trace, t, l, es[i]);
                    load[l][a]++;
                    for (int j = i + 1; j < es.length; j++) {
                        int b = check(trace, t, l, es[j]);
                        if (a != b) {
                            co[l][a][b]++;
                        }
                    }
                    if (full && l + 1 < layers) {
                        for (int b : t.experts()[l + 1]) {
                            tr[l][a][check(trace, t, l + 1, b)]++;
                        }
                    }
                }
            }
        }
        int[][][] r = new int[layers][][];
        for (int l = 0; l < layers; l++) {
            r[l] = rows.get(l).toArray(int[][]::new);
        }
        return new RouteStats(trace.firstLayer(), layers, experts, trace.topK(), load, co, tr, r);
    }

    private static int check(RouteTrace trace, TokenRoute t, int layer, int expert) {
        if (expert < 0 || expert >= trace.experts()) {
            throw new IllegalArgumentException(trace.source() + ": token " + t.key() + " layer "
                    + trace.layerNumber(layer) + " routes to expert " + expert + ", the trace has " + trace.experts());
        }
        return expert;
    }

    /** (token, expert) pairs at a layer index. */
    public double totalLoad(int layer) {
        double s = 0;
        for (double v : load[layer]) {
            s += v;
        }
        return s;
    }
}
