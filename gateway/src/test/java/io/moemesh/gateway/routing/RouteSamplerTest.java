package io.moemesh.gateway.routing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.golden.TestModels;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The route sampler as the engine's route observer, on the Qwen2-MoE golden model (it has a shared expert):
 * every sampled token's route is what the engine's own trace says, layer by layer, without the shared expert; the
 * sample rate is honoured; a full queue drops and counts, never blocks.
 */
class RouteSamplerTest {
    private static MoeModel model;
    private static ModelConfig c;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.QWEN2_MOE));
        c = model.config();
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static Engine engine(RouteSampler sampler) {
        return model.engine(LocalExperts.fromStore(model.tensors(), c), sampler);
    }

    private static int[] prompt(int n) {
        return IntStream.range(0, n).map(i -> 10 + (i * 37) % (c.vocabSize() - 10)).toArray();
    }

    @Test
    void everySampledToken_carriesTheEnginesRoutes_withoutTheSharedExpert() {
        assertThat(c.hasSharedExpert()).as("the model under test has a shared expert").isTrue();
        RouteSampler sampler = new RouteSampler(c.numLayers(), c.topK(), 1.0, 1000);
        Engine engine = engine(sampler);
        var cache = model.newCache(256);
        int[] ids = prompt(12);
        StepOutput out = engine.step(List.of(new SequenceStep(7, ids, 0, SequenceStep.Logits.LAST, true)), cache)
                .getFirst();

        List<SampledRoute> routes = sampler.drain(100);
        assertThat(routes).hasSize(ids.length);
        for (int p = 0; p < ids.length; p++) {
            SampledRoute r = routes.get(p);
            assertThat(r.sequence()).isEqualTo(7);
            assertThat(r.position()).isEqualTo(p);
            assertThat(r.tokenId()).isEqualTo(ids[p]);
            assertThat(r.prefill()).isTrue();
            for (int l = 0; l < c.numLayers(); l++) {
                for (int j = 0; j < c.topK(); j++) {
                    int e = r.experts()[l * c.topK() + j];
                    assertThat(e).as("layer %d position %d", l, p).isEqualTo(out.routes()[l][p][j])
                            .isLessThan(c.numExperts());
                    assertThat(r.weights()[l * c.topK() + j]).isCloseTo(out.routeWeights()[l][p][j], within(1e-6f));
                }
            }
        }

        // A decode step of the same sequence: one generated token, not prefill.
        engine.step(StepContext.of(List.of(SequenceStep.decode(7, 42, ids.length))), cache);
        assertThat(sampler.drain(100)).singleElement().satisfies(r -> {
            assertThat(r.prefill()).isFalse();
            assertThat(r.position()).isEqualTo(ids.length);
            assertThat(r.tokenId()).isEqualTo(42);
        });
        assertThat(sampler.queued()).isEqualTo(ids.length + 1);
        assertThat(sampler.dropped()).isZero();
    }

    @Test
    void fullQueue_dropsAndCounts_withoutBlockingTheEngine() {
        RouteSampler sampler = new RouteSampler(c.numLayers(), c.topK(), 1.0, 3);
        engine(sampler).step(List.of(new SequenceStep(1, prompt(10), 0, SequenceStep.Logits.LAST, false)),
                model.newCache(64));
        assertThat(sampler.waiting()).isEqualTo(3);
        assertThat(sampler.queued()).isEqualTo(3);
        assertThat(sampler.dropped()).isEqualTo(7);
        assertThat(sampler.drain(10)).extracting(SampledRoute::position).containsExactly(0, 1, 2);
    }

    @ParameterizedTest(name = "rate {0}")
    @ValueSource(doubles = {0.01, 0.1, 0.5, 0.9})
    void sampleRate_isHonoured_overManyTokens(double rate) {
        int n = 0;
        int tokens = 200_000;
        for (int seq = 0; seq < 400; seq++) {
            for (int pos = 0; pos < tokens / 400; pos++) {
                n += RouteSampler.sampled(seq, pos, rate) ? 1 : 0;
            }
        }
        // 5 standard deviations of a binomial: a hash that is uniform passes, a biased one does not.
        double sd = Math.sqrt(tokens * rate * (1 - rate));
        assertThat((double) n).isCloseTo(tokens * rate, within(5 * sd));
    }

    @Test
    void sampledTokens_areTheOnesTheHashPicks_inAnEngineStep() {
        double rate = 0.3;
        RouteSampler sampler = new RouteSampler(c.numLayers(), c.topK(), rate, 1000);
        int[] ids = prompt(40);
        engine(sampler).step(List.of(new SequenceStep(3, ids, 0, SequenceStep.Logits.LAST, false)), model.newCache(64));
        List<Integer> expected = IntStream.range(0, ids.length).filter(p -> RouteSampler.sampled(3, p, rate)).boxed()
                .toList();
        assertThat(expected).isNotEmpty().hasSizeLessThan(ids.length);
        assertThat(sampler.drain(100)).extracting(SampledRoute::position).containsExactlyElementsOf(expected);
    }

    @Test
    void aStepThatDidNotReachItsLastLayer_reportsNothing() {
        RouteSampler sampler = new RouteSampler(3, 2, 1.0, 10);
        StepContext failed = StepContext.of(List.of(new SequenceStep(1, new int[] {5, 6}, 0, SequenceStep.Logits.LAST,
                false)));
        StepContext next = StepContext.of(List.of(SequenceStep.decode(2, 9, 4)));
        int[] experts = {0, 1, 2, 3};
        float[] weights = {0.5f, 0.5f, 0.5f, 0.5f};
        sampler.onRoutes(failed, 0, experts, weights, 2);
        sampler.onRoutes(failed, 1, experts, weights, 2);
        // The failed step never reached layer 2; the next one starts over.
        for (int l = 0; l < 3; l++) {
            sampler.onRoutes(next, l, experts, weights, 2);
        }
        assertThat(sampler.drain(10)).singleElement().satisfies(r -> {
            assertThat(r.sequence()).isEqualTo(2);
            assertThat(r.experts()).containsExactly(0, 1, 0, 1, 0, 1);
        });
    }
}
