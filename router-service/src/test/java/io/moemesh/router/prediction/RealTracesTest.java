package io.moemesh.router.prediction;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.moemesh.router.trace.Relabelling;
import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TraceReader;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Issue 10's prediction goals on the real traces (docs/performance.md#expert-path-prediction), read by path from
 * {@code $MOEMESH_TRACES} or {@code ../../shared/traces} (the shared directory next to the repository); skipped
 * where they are absent (CI has none: nothing else may depend on them).
 */
class RealTracesTest {

    private static Path traces() {
        String env = System.getenv("MOEMESH_TRACES");
        Path dir = env != null ? Path.of(env) : Path.of("../../shared/traces");
        assumeTrue(Files.isRegularFile(dir.resolve("flame_moe_290m_prefill_routes.csv"))
                && Files.isRegularFile(dir.resolve("mixtral8x7b_gsm8k_2_routing.jsonl")), "no traces at " + dir);
        return dir;
    }

    @Test
    void flame_learnedReaches075With2K_andBeatsNaiveBy10Points_relabelProof() {
        RouteTrace whole = TraceReader.read(traces().resolve("flame_moe_290m_prefill_routes.csv"));
        RouteTrace train = new RouteTrace("train", whole.firstLayer(), whole.layers(), whole.experts(), whole.topK(),
                whole.tokens().subList(0, 1024));
        RouteTrace test = new RouteTrace("test", whole.firstLayer(), whole.layers(), whole.experts(), whole.topK(),
                whole.tokens().subList(1024, whole.tokens().size()));

        checkGoals(train, test);
        assertThat(PredictionEval.run(train, test, "learned", null).overall(1).recall2K()).isGreaterThanOrEqualTo(0.75);
    }

    @Test
    void mixtral_learnedBeatsNaiveBy10Points_crossDomain_relabelProof() {
        Path dir = traces();
        checkGoals(TraceReader.read(dir.resolve("mixtral8x7b_humaneval_2_routing.jsonl")),
                TraceReader.read(dir.resolve("mixtral8x7b_gsm8k_2_routing.jsonl")));
    }

    private static void checkGoals(RouteTrace train, RouteTrace test) {
        EvalResult learned = PredictionEval.run(train, test, "learned", null);
        EvalResult naive = PredictionEval.run(train, test, "transitions", null);
        assertThat(learned.overall(1).recallK()).isGreaterThanOrEqualTo(naive.overall(1).recallK() + 0.10);
        assertThat(learned.overall(1).recall2K()).isGreaterThanOrEqualTo(naive.overall(1).recall2K() + 0.10);

        Relabelling relabelling = Relabelling.random(train.layers(), train.experts(), 1);
        EvalResult relabelled = PredictionEval.run(relabelling.apply(train), relabelling.apply(test), "learned", null);
        for (int ahead : PredictionEval.AHEADS) {
            assertThat(relabelled.overall(ahead).recallK()).isCloseTo(learned.overall(ahead).recallK(), within(0.02));
            assertThat(relabelled.overall(ahead).recall2K()).isCloseTo(learned.overall(ahead).recall2K(), within(0.02));
        }
    }
}
