package io.moemesh.router.trace;

import java.util.List;

/**
 * A routing trace: the tokens of one file in file order, each with its routes through the trace's MoE layers.
 * Layers are numbered as in the file ({@code firstLayer} .. {@code firstLayer + layers - 1}: FLAME 2..9, Mixtral
 * 0..31); a {@link TokenRoute}'s arrays are indexed from 0 = {@code firstLayer}.
 *
 * @param source     where it was read from (a path), for messages
 * @param firstLayer the number the file gives its first MoE layer
 * @param layers     MoE layers in the file
 * @param experts    routed experts per layer: the model's count when the reader was told it, else the highest
 *                   expert id seen + 1 rounded up to a power of two ({@link TraceReader}'s rule), so that two
 *                   files of one model agree although each shows only the experts that happened to be chosen
 * @param topK       experts chosen per token per layer
 * @param tokens     every token of the file, in file order
 */
public record RouteTrace(String source, int firstLayer, int layers, int experts, int topK, List<TokenRoute> tokens) {

    public RouteTrace {
        if (layers < 1 || experts < 1 || topK < 1 || topK > experts) {
            throw new IllegalArgumentException(source + ": a trace needs ≥ 1 layer, ≥ 1 expert and 1 ≤ top-k ≤ experts");
        }
        tokens = List.copyOf(tokens);
        for (TokenRoute t : tokens) {
            if (t.layers() != layers) {
                throw new IllegalArgumentException(source + ": token " + t.key() + " has " + t.layers()
                        + " layer entries, the trace " + layers);
            }
        }
    }

    /** The tokens with routes at every layer (path statistics use only these). */
    public List<TokenRoute> fullPaths() {
        return tokens.stream().filter(TokenRoute::fullPath).toList();
    }

    /**
     * The tokens with routes at every layer, refusing a trace that has none (path statistics and path
     * prediction need at least one whole path), naming the file.
     */
    public List<TokenRoute> requireFullPaths() {
        List<TokenRoute> full = fullPaths();
        if (full.isEmpty()) {
            throw new IllegalArgumentException(source + ": no token has routes at all " + layers + " layers ("
                    + firstLayer + ".." + (firstLayer + layers - 1) + "); a full path is needed");
        }
        return full;
    }

    /** The layer number the file uses for layer index {@code index}. */
    public int layerNumber(int index) {
        return firstLayer + index;
    }

    /**
     * Refuses a trace of another model shape than this one (a train file and a test file must agree on layer
     * numbers, expert count and top-k; the expert counts are comparable by the reader's power-of-two rule),
     * naming both files.
     */
    public void requireSameModel(RouteTrace other) {
        if (other.firstLayer != firstLayer || other.layers != layers || other.experts != experts
                || other.topK != topK) {
            throw new IllegalArgumentException(other.source + " (" + other.shape() + ") is not from the model of "
                    + source + " (" + shape() + ")");
        }
    }

    private String shape() {
        return "layers " + firstLayer + ".." + (firstLayer + layers - 1) + ", " + experts + " experts, top-" + topK;
    }
}
