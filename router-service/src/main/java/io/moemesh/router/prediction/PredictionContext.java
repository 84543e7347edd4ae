package io.moemesh.router.prediction;

import io.moemesh.router.trace.TokenRoute;
import java.util.List;

/**
 * What may be known of a token when its experts at a later layer are predicted: its vocabulary id, the tokens
 * before it in its sequence (with their whole paths: they have been computed), and its own routes at the layers
 * already computed.
 *
 * @param tokenId the token's vocabulary id, or -1 when unknown (Mixtral JSONL traces)
 * @param recent  the latest tokens of its sequence before it, oldest first (may be empty)
 * @param known   per layer index, the experts its gate chose (best first), or null where not known (yet)
 */
public record PredictionContext(int tokenId, List<TokenRoute> recent, int[][] known) {

    public PredictionContext {
        recent = List.copyOf(recent);
        if (known == null) {
            throw new IllegalArgumentException("known routes needed (null entries where unknown)");
        }
    }

    /**
     * The context of {@code token} for predicting with routes known up to layer index {@code lastKnown}
     * (inclusive; -1 for none): its routes at later layers are hidden.
     */
    public static PredictionContext of(TokenRoute token, List<TokenRoute> recent, int lastKnown) {
        int[][] known = new int[token.layers()][];
        for (int l = 0; l <= lastKnown && l < known.length; l++) {
            known[l] = token.experts()[l];
        }
        return new PredictionContext(token.tokenId(), recent, known);
    }

    /** The highest layer index with known routes, or -1. */
    public int lastKnownLayer() {
        for (int l = known.length - 1; l >= 0; l--) {
            if (known[l] != null) {
                return l;
            }
        }
        return -1;
    }

    /** The sequence's previous token, or null. */
    public TokenRoute previous() {
        return recent.isEmpty() ? null : recent.getLast();
    }
}
