package io.moemesh.router.prediction;

import io.moemesh.router.trace.TokenRoute;
import java.util.List;

/**
 * A predictor whose whole memory is one set of {@link RouteCounts}: learning a token is adding it to the counts;
 * the subclasses differ only in how {@link #predict} scores experts from them.
 */
abstract class CountingPredictor implements PathPredictor {

    protected final RouteCounts counts;

    CountingPredictor(ModelShape shape) {
        this.counts = new RouteCounts(shape);
    }

    @Override
    public final void learn(TokenRoute token, List<TokenRoute> recent) {
        counts.add(token, recent.isEmpty() ? null : recent.getLast());
    }
}
