package io.moemesh.router.prediction;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.router.trace.Relabelling;
import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

class PredictionEvalTest {

    static List<String> names() {
        return PathPredictors.names();
    }

    private static RouteTrace train() {
        return SyntheticTraces.lagged(10, 300, 6, 16, 2, 1, 0.3, 20);
    }

    private static RouteTrace test() {
        return SyntheticTraces.lagged(11, 120, 6, 16, 2, 1, 0.3, 20);
    }

    @ParameterizedTest
    @MethodSource("names")
    void dump_recomputesTheReportedRecall_perLayerAndOverall(String name) throws Exception {
        RouteTrace test = test();
        StringWriter dump = new StringWriter();

        EvalResult result = PredictionEval.run(train(), test, name, dump);

        Map<String, TokenRoute> byKey = new HashMap<>();
        test.tokens().forEach(t -> byKey.put(t.key(), t));
        Map<String, double[]> sums = new HashMap<>(); // "ahead/layer" → scored, hits k, hits 2k
        JsonMapper json = JsonMapper.builder().build();
        List<String> lines = dump.toString().lines().toList();
        for (String line : lines) {
            JsonNode row = json.readTree(line);
            int layer = row.get("layer").intValue();
            int ahead = row.get("ahead").intValue();
            int[] predicted = new int[row.get("predicted").size()];
            for (int i = 0; i < predicted.length; i++) {
                predicted[i] = row.get("predicted").get(i).intValue();
            }
            assertThat(layer - ahead).as("a layer with A earlier layers in the file").isGreaterThanOrEqualTo(0);
            assertThat(predicted).hasSize(2 * test.topK()).doesNotHaveDuplicates();
            int[] truth = byKey.get(row.get("key").stringValue()).experts()[layer - test.firstLayer()];
            double[] s = sums.computeIfAbsent(ahead + "/" + layer, x -> new double[3]);
            s[0]++;
            s[1] += hits(predicted, test.topK(), truth) / (double) truth.length;
            s[2] += hits(predicted, 2 * test.topK(), truth) / (double) truth.length;
        }
        // 120 tokens × (5 + 4 + 2 layers with 1, 2, 4 earlier layers)
        assertThat(lines).hasSize(120 * (5 + 4 + 2));
        assertThat(result.rows()).hasSize(sums.size());
        for (EvalResult.Row r : result.rows()) {
            double[] s = sums.get(r.ahead() + "/" + (r.layer() + test.firstLayer()));
            assertThat(r.scored()).isEqualTo((long) s[0]);
            assertThat(r.recallK()).isCloseTo(s[1] / s[0], within(1e-9));
            assertThat(r.recall2K()).isCloseTo(s[2] / s[0], within(1e-9));
        }
        assertThat(result.overall(1).scored()).isEqualTo(120 * 5);
    }

    @Test
    void transitionsBeatChance_andLearnedBeatsTransitions_whenRoutesDependOnEarlierLayers() {
        EvalResult transitions = PredictionEval.run(train(), test(), "transitions", null);
        RouteTrace lag2Train = SyntheticTraces.lagged(12, 600, 6, 16, 2, 2, 0.1, 20);
        RouteTrace lag2Test = SyntheticTraces.lagged(13, 200, 6, 16, 2, 2, 0.1, 20);
        EvalResult learned = PredictionEval.run(lag2Train, lag2Test, "learned", null);
        EvalResult naive = PredictionEval.run(lag2Train, lag2Test, "transitions", null);

        assertThat(transitions.overall(1).recallK()).isGreaterThan(transitions.chanceK() + 0.2);
        assertThat(learned.overall(1).recallK()).isGreaterThan(naive.overall(1).recallK() + 0.2);
        assertThat(learned.chanceK()).isEqualTo(2.0 / 16);
        assertThat(learned.chance2K()).isEqualTo(4.0 / 16);
    }

    @Property(tries = 8)
    void relabellingBothFiles_changesRecallByAtMost002(@ForAll long seed) {
        RouteTrace train = train();
        RouteTrace test = test();
        Relabelling relabelling = Relabelling.random(train.layers(), train.experts(), seed);
        for (String name : PathPredictors.names()) {
            EvalResult plain = PredictionEval.run(train, test, name, null);
            EvalResult relabelled = PredictionEval.run(relabelling.apply(train), relabelling.apply(test), name, null);
            for (int ahead : PredictionEval.AHEADS) {
                assertThat(relabelled.overall(ahead).recallK()).as(name + " k, ahead " + ahead)
                        .isCloseTo(plain.overall(ahead).recallK(), within(0.02));
                assertThat(relabelled.overall(ahead).recall2K()).as(name + " 2k, ahead " + ahead)
                        .isCloseTo(plain.overall(ahead).recall2K(), within(0.02));
            }
        }
    }

    @Test
    void filesOfDifferentModels_refused() {
        RouteTrace otherLayers = SyntheticTraces.lagged(11, 20, 5, 16, 2, 1, 0.3, 20);
        RouteTrace otherExperts = SyntheticTraces.lagged(11, 20, 6, 32, 2, 1, 0.3, 20);

        assertThatThrownBy(() -> PredictionEval.run(train(), otherLayers, "learned", null))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("is not from the model of");
        assertThatThrownBy(() -> PredictionEval.run(train(), otherExperts, "learned", null))
                .hasMessageContaining("32 experts");
    }

    @Test
    void testTraceWithNoFullPath_refused() {
        RouteTrace full = test();
        List<TokenRoute> partial = new ArrayList<>();
        for (TokenRoute t : full.tokens()) {
            int[][] e = t.experts().clone();
            float[][] w = t.weights().clone();
            e[3] = null;
            w[3] = null;
            partial.add(new TokenRoute(t.key(), t.tokenId(), e, w));
        }
        RouteTrace noPath = new RouteTrace("partial.jsonl", 0, 6, 16, 2, partial);

        assertThatThrownBy(() -> PredictionEval.run(train(), noPath, "learned", null))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("partial.jsonl: no token has routes at all 6 layers (0..5); a full path is needed");
    }

    @Test
    void partialTestTokens_areLearnedButNotScored() {
        RouteTrace full = test();
        List<TokenRoute> tokens = new ArrayList<>(full.tokens());
        TokenRoute first = tokens.getFirst();
        int[][] e = first.experts().clone();
        float[][] w = first.weights().clone();
        e[0] = null;
        w[0] = null;
        tokens.set(0, new TokenRoute(first.key(), first.tokenId(), e, w));
        RouteTrace mixed = new RouteTrace("mixed", 0, 6, 16, 2, tokens);

        EvalResult result = PredictionEval.run(train(), mixed, "learned", null);

        assertThat(result.overall(1).scored()).isEqualTo(119 * 5);
    }

    private static int hits(int[] predicted, int guesses, int[] truth) {
        return (int) Arrays.stream(predicted, 0, guesses).filter(x -> Arrays.stream(truth).anyMatch(y -> y == x))
                .count();
    }
}
