package io.moemesh.router.prediction;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class PathPredictorsTest {

    static List<String> names() {
        return PathPredictors.names();
    }

    @Test
    void unknownName_refused_listingTheNames() {
        assertThatThrownBy(() -> PathPredictors.named("oracle", new ModelShape(2, 8, 2)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("unknown predictor 'oracle' (known: learned, transitions, pooled, token, popularity)");
    }

    @Test
    void default_isTheLearnedModel_neverPopularity() {
        assertThat(PathPredictors.DEFAULT).isEqualTo("learned").isNotEqualTo("popularity");
        assertThat(PathPredictors.names().getFirst()).isEqualTo(PathPredictors.DEFAULT);
    }

    @ParameterizedTest
    @MethodSource("names")
    void predict_returnsNDistinctExpertsInRange_evenUntrained(String name) {
        PathPredictor predictor = PathPredictors.named(name, new ModelShape(3, 8, 2));
        PredictionContext nothing = new PredictionContext(-1, List.of(), new int[3][]);

        int[] untrained = predictor.predict(nothing, 2, 8);
        RouteTrace trace = SyntheticTraces.lagged(1, 50, 3, 8, 2, 1, 0.2, 5);
        trace.tokens().forEach(predictor::learn);
        int[] trained = predictor.predict(PredictionContext.of(trace.tokens().getFirst(), List.of(), 0), 2, 4);

        assertThat(untrained).containsExactlyInAnyOrder(0, 1, 2, 3, 4, 5, 6, 7);
        assertThat(trained).hasSize(4).doesNotHaveDuplicates();
        assertThat(Arrays.stream(trained).boxed().toList()).isSubsetOf(0, 1, 2, 3, 4, 5, 6, 7);
        assertThat(predictor.name()).isEqualTo(name);
    }

    @ParameterizedTest
    @MethodSource("names")
    void predict_refuses_aContextThatKnowsTheTargetLayer_orATargetOutOfRange(String name) {
        PathPredictor predictor = PathPredictors.named(name, new ModelShape(3, 8, 2));
        int[][] known = {{1, 2}, {3, 4}, null};

        assertThatThrownBy(() -> predictor.predict(new PredictionContext(-1, List.of(), known), 1, 2))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("the context knows layer index 1, not before the target 1");
        assertThatThrownBy(() -> predictor.predict(new PredictionContext(-1, List.of(), new int[3][]), 3, 2))
                .hasMessage("target layer index must be 0..2, got 3");
        assertThatThrownBy(() -> predictor.predict(new PredictionContext(-1, List.of(), new int[3][]), 2, 9))
                .hasMessage("n must be 1..8, got 9");
    }

    @Test
    void popularity_ranksByFrequency_tiesByFirstSeen_notByExpertId() {
        PathPredictor predictor = PathPredictors.named("popularity", new ModelShape(1, 8, 2));
        predictor.learn(route("a", new int[] {7, 5}));
        predictor.learn(route("b", new int[] {5, 3}));

        int[] best = predictor.predict(new PredictionContext(-1, List.of(), new int[1][]), 0, 3);

        assertThat(best).containsExactly(5, 7, 3); // 5 twice; 7 and 3 once, 7 seen first
    }

    @Test
    void transitions_predictsFromTheLastKnownLayer() {
        RouteTrace trace = SyntheticTraces.lagged(2, 400, 4, 16, 2, 1, 0.0, 0);
        PathPredictor predictor = PathPredictors.named("transitions", ModelShape.of(trace));
        trace.tokens().subList(0, 300).forEach(predictor::learn);

        double recall = meanRecall(predictor, trace.tokens().subList(300, 400), 1, 1);

        assertThat(recall).isGreaterThan(0.9);
    }

    @Test
    void learned_usesEarlierLayersThanTheLast_whereTransitionsCannot() {
        // layer l's experts follow layer l - 2; layer l - 1 carries no information about them
        RouteTrace trace = SyntheticTraces.lagged(3, 800, 4, 16, 2, 2, 0.0, 0);
        PathPredictor learned = PathPredictors.named("learned", ModelShape.of(trace));
        PathPredictor transitions = PathPredictors.named("transitions", ModelShape.of(trace));
        trace.tokens().subList(0, 600).forEach(t -> {
            learned.learn(t);
            transitions.learn(t);
        });

        double learnedRecall = meanRecall(learned, trace.tokens().subList(600, 800), 1, 2);
        double transitionsRecall = meanRecall(transitions, trace.tokens().subList(600, 800), 1, 2);

        assertThat(learnedRecall).isGreaterThan(0.8);
        assertThat(transitionsRecall).isLessThan(0.5);
    }

    @Test
    void token_conditionsOnTheTokenId_andDegradesToPopularityWithoutIds() {
        int[][] byToken = {{0, 1}, {2, 3}, {4, 5}, {6, 7}};
        PathPredictor token = PathPredictors.named("token", new ModelShape(1, 8, 2));
        PathPredictor popularity = PathPredictors.named("popularity", new ModelShape(1, 8, 2));
        for (int i = 0; i < 40; i++) {
            TokenRoute t = new TokenRoute("0:" + i, i % 4, new int[][] {byToken[i % 4]}, new float[][] {{0.6f, 0.4f}});
            token.learn(t);
            popularity.learn(t);
        }
        PredictionContext withoutId = new PredictionContext(-1, List.of(), new int[1][]);

        assertThat(token.predict(new PredictionContext(2, List.of(), new int[1][]), 0, 2)).containsExactly(4, 5);
        assertThat(token.predict(withoutId, 0, 8)).containsExactly(popularity.predict(withoutId, 0, 8));
    }

    private static TokenRoute route(String key, int[] experts) {
        return new TokenRoute(key, -1, new int[][] {experts}, new float[][] {new float[experts.length]});
    }

    /**
     * Mean recall with k guesses of {@code ahead}-layers-ahead predictions of layers ≥ {@code fromLayer} over
     * {@code tokens}, learning none.
     */
    private static double meanRecall(PathPredictor predictor, List<TokenRoute> tokens, int ahead, int fromLayer) {
        double sum = 0;
        int n = 0;
        for (TokenRoute t : tokens) {
            for (int l = Math.max(ahead, fromLayer); l < t.layers(); l++) {
                int[] truth = t.experts()[l];
                int[] predicted = predictor.predict(PredictionContext.of(t, List.of(), l - ahead), l, truth.length);
                sum += Arrays.stream(predicted).filter(x -> Arrays.stream(truth).anyMatch(y -> y == x)).count()
                        / (double) truth.length;
                n++;
            }
        }
        return sum / n;
    }
}
