package io.moemesh.router.prediction;

import io.moemesh.router.trace.TokenRoute;
import java.util.List;

/**
 * Predicts the experts a token's gate will choose at a later MoE layer (pre-gating: Pre-gated MoE, Read-ME,
 * ExpertFlow), learning online. The contract is the online one of the router: {@link #learn} is called with
 * every token whose routes have been observed (whole paths or partial ones), {@link #predict} with what is known
 * of a token at that moment. Implementations are not thread-safe.
 *
 * <p>Ties between experts are broken by how often the expert was chosen at the target layer, then by the order in
 * which experts were first seen there, never by expert id among experts seen: relabelling experts must not change
 * what is predicted (issue 10's relabelling rule).
 */
public interface PathPredictor {

    /** The name it is chosen by ({@link PathPredictors#named}). */
    String name();

    /**
     * Learns the observed routes of {@code token} (null entries where it has none), the tokens before it in its
     * sequence being {@code recent} (oldest first; may be empty).
     */
    void learn(TokenRoute token, List<TokenRoute> recent);

    /** Learns {@code token} without sequence context. */
    default void learn(TokenRoute token) {
        learn(token, List.of());
    }

    /**
     * The {@code n} experts most likely chosen at layer index {@code targetLayer}, best first ({@code n} ≤ the
     * model's experts), from {@code context}; its known routes must all be at layers below {@code targetLayer}.
     */
    int[] predict(PredictionContext context, int targetLayer, int n);
}
