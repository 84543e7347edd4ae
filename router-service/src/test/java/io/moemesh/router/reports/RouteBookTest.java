package io.moemesh.router.reports;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import static io.moemesh.router.support.TestRoutes.book;
import static io.moemesh.router.support.TestRoutes.token;

import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.prediction.PathPredictor;
import io.moemesh.router.prediction.PathPredictors;
import io.moemesh.router.prediction.PredictionContext;
import io.moemesh.router.support.TestRoutes;
import io.moemesh.router.trace.TokenRoute;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class RouteBookTest {
    static ReportedToken withLayers(ReportedLayer... layers) {
        return new ReportedToken("r", 0, 7, List.of(layers));
    }

    static Stream<Arguments> badReports() {
        float[] w2 = {0.5f, 0.5f};
        return Stream.of(
                Arguments.of(withLayers(new ReportedLayer(4, new long[] {0, 1}, w2)),
                        "samples[1].route.layers[0].layer: layer 4 is not in [0, 4)"),
                Arguments.of(withLayers(new ReportedLayer(0, new long[] {0, 8}, w2)),
                        "samples[1].route.layers[0].experts[1]: expert 8 is not in [0, 8)"),
                Arguments.of(withLayers(new ReportedLayer(0, new long[] {3, 3}, w2)),
                        "samples[1].route.layers[0].experts[1]: expert 3 is listed twice"),
                Arguments.of(withLayers(new ReportedLayer(0, new long[] {3}, new float[] {1})),
                        "samples[1].route.layers[0].experts: 1 experts, the model's gate picks top_k = 2"),
                Arguments.of(withLayers(new ReportedLayer(0, new long[] {0, 1}, new float[] {1})),
                        "samples[1].route.layers[0].weights: 1 weights for 2 experts"),
                Arguments.of(withLayers(new ReportedLayer(0, new long[] {0, 1}, new float[] {Float.NaN, 0})),
                        "samples[1].route.layers[0].weights[0]: NaN is not a finite weight >= 0"),
                Arguments.of(withLayers(new ReportedLayer(1, new long[] {0, 1}, w2), new ReportedLayer(1, new long[] {0, 1}, w2)),
                        "samples[1].route.layers[1].layer: layer 1 after layer 1"),
                Arguments.of(withLayers(), "samples[1].route.layers: no layers reported"),
                Arguments.of(new ReportedToken("r", 0, -2, List.of(new ReportedLayer(0, new long[] {0, 1}, w2))),
                        "samples[1].route.token_id: -2 is not a token id"));
    }

    @ParameterizedTest
    @MethodSource("badReports")
    void ingest_refusesAMessageWithABadSample_namingTheField_andIngestsNothingOfIt(ReportedToken bad, String message) {
        RouteBook book = book(100);
        assertThatThrownBy(() -> book.ingest(List.of(token("a", 0, 1), bad)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith(message);
        assertThat(book.ingested()).isZero();
        assertThat(book.windowSize()).isZero();
        assertThat(book.dropped()).isEqualTo(2);
        assertThat(book.recall().truths()).isZero();
    }

    /** PredictPaths' observed routes are only read while their sequence is predicted: no copy of the id in each. */
    @Test
    void observedRoute_isCheckedAsAReportedOne_butItsKeyHoldsNoCopyOfTheRequestId() {
        RouteBook book = book(100);
        String id = "q".repeat(RouteBook.MAX_REQUEST_ID_BYTES);
        TokenRoute r = book.toObservedRoute(token(id, 5, 1), "sequences[0].observed[0]");
        assertThat(r.key()).isEqualTo("observed:5");
        assertThat(r.experts()[0]).containsExactly(1, 2);
        ReportedToken outside = new ReportedToken(id, 6, 7, List.of(new ReportedLayer(4, new long[] {0, 1},
                new float[0])));
        assertThatThrownBy(() -> book.toObservedRoute(outside, "sequences[0].observed[1]"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("sequences[0].observed[1].layers[0].layer: layer 4 is not in [0, 4)");
        assertThat(book.windowSize()).isZero();
    }

    @Test
    void ingest_scoresEachTokenBeforeLearningIt_soTheFirstTokenIsScoredAgainstAnUntrainedPredictor() {
        RouteBook book = book(100);
        book.ingest(List.of(token("a", 0, 1)));
        // 3 layers with a previous layer × 2 experts scored.
        assertThat(book.recall().truths()).isEqualTo(6);
        for (int i = 1; i < 200; i++) {
            book.ingest(List.of(token("a", i, 1)));
        }
        // The same path 200 times: learned, so recall with 2k guesses approaches 1.
        assertThat(book.recall().recall2K()).isGreaterThan(0.9);
        assertThat(book.recall().recallK()).isLessThanOrEqualTo(book.recall().recall2K());
    }

    @Test
    void window_keepsOnlyTheLatestTokens_soMemoryStaysBounded() {
        RouteBook book = book(10);
        for (int i = 0; i < 25; i++) {
            book.ingest(List.of(token("a", i, i)));
        }
        assertThat(book.windowSize()).isEqualTo(10);
        assertThat(book.ingested()).isEqualTo(25);
        assertThat(book.stats(11)).isNull();
        assertThat(book.stats(10).totalLoad(0)).isEqualTo(20);
    }

    @Test
    void ingest_refusesMoreThanTheSampleLimitPerMessage() {
        List<ReportedToken> many = new ArrayList<>();
        for (int i = 0; i <= RouteBook.MAX_SAMPLES_PER_MESSAGE; i++) {
            many.add(token("a", i, i));
        }
        assertThatThrownBy(() -> book(10).ingest(many)).hasMessageStartingWith("samples: 4097 in one message");
    }

    @Test
    void snapshot_restoresWindowCountsAndRecall_intoAFreshBook(@TempDir Path dir) {
        RouteBook book = book(50);
        for (int i = 0; i < 60; i++) {
            book.ingest(List.of(token("a", i, i % 3)));
        }
        RouteBookSnapshots.write(dir, book);
        RouteBook restored = book(50);
        assertThat(RouteBookSnapshots.restore(dir, restored)).isTrue();
        assertThat(restored.windowSize()).isEqualTo(50);
        assertThat(restored.ingested()).isEqualTo(60);
        assertThat(restored.recall()).isEqualTo(book.recall());
        assertThat(restored.windowTrace().tokens()).extracting(t -> t.experts()[2][0])
                .isEqualTo(book.windowTrace().tokens().stream().map(t -> t.experts()[2][0]).toList());
    }

    @Test
    void snapshot_ofAnotherModel_isRefused_namingTheFile(@TempDir Path dir) {
        RouteBook book = book(5);
        book.ingest(List.of(token("a", 0, 0)));
        RouteBookSnapshots.write(dir, book);
        ModelShape other = new ModelShape(4, 16, 2);
        RouteBook bigger = new RouteBook(other, PathPredictors.named("popularity", other), 5);
        assertThatThrownBy(() -> RouteBookSnapshots.restore(dir, bigger)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("routes.json: a snapshot of a model with 4 layers, 8 experts");
    }

    @Test
    void restore_withoutASnapshot_changesNothing(@TempDir Path dir) {
        assertThat(RouteBookSnapshots.restore(dir, book(5))).isFalse();
    }

    /** The real default predictor, recording the sequence context each token is learned with. */
    static final class RecordingPredictor implements PathPredictor {
        final PathPredictor real = PathPredictors.named(PathPredictors.DEFAULT, TestRoutes.SHAPE);
        final List<List<TokenRoute>> learnedWith = new ArrayList<>();

        @Override
        public String name() {
            return real.name();
        }

        @Override
        public void learn(TokenRoute token, List<TokenRoute> recent) {
            learnedWith.add(List.copyOf(recent));
            real.learn(token, recent);
        }

        @Override
        public int[] predict(PredictionContext context, int targetLayer, int n) {
            return real.predict(context, targetLayer, n);
        }
    }

    @Test
    void ingest_takesTheRequestsSampleAtPositionMinusOneAsThePreviousToken_andNoOtherSample() {
        RecordingPredictor predictor = new RecordingPredictor();
        RouteBook book = new RouteBook(TestRoutes.SHAPE, predictor, 100);
        // Sampled ~10% of positions: position 10's latest sample is 10 positions back, not its neighbour.
        book.ingest(List.of(token("a", 0, 1), token("a", 10, 2)));
        book.ingest(List.of(token("b", 0, 1), token("b", 1, 2)));
        assertThat(predictor.learnedWith.get(1)).as("position 10 after a sample at 0").isEmpty();
        assertThat(predictor.learnedWith.get(3)).as("position 1 after a sample at 0").singleElement()
                .satisfies(previous -> assertThat(previous.key()).startsWith("b:0#"));
    }

    @Test
    void ingest_refusesATokenIdAtOrAboveTheVocabularySize_namingTheField() {
        RouteBook book = new RouteBook(TestRoutes.SHAPE, PathPredictors.named(PathPredictors.DEFAULT, TestRoutes.SHAPE),
                100, 512);
        ReportedToken beyond = new ReportedToken("r", 1, 512, token("r", 1, 0).layers());
        assertThatThrownBy(() -> book.ingest(List.of(token("r", 0, 1), beyond)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("samples[1].route.token_id: 512 is not a token id (in [0, 512)");
        assertThat(book.ingested()).isZero();
        ReportedToken last = new ReportedToken("r", 1, 511, token("r", 1, 0).layers());
        assertThat(book.ingest(List.of(last))).isEqualTo(1);
    }
}
