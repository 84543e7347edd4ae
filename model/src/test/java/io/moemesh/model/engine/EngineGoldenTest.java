package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.Sampler;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.safetensors.TensorStore;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The reference engine against the Hugging Face transformers outputs in models/&lt;name&gt;/golden.json. */
class EngineGoldenTest {

    static Stream<GoldenCase> cases() {
        return GoldenCase.all(TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE).stream();
    }

    private static Engine engine(String model) {
        ModelConfig config = ModelConfigReader.read(TestModels.dir(model));
        TensorStore store = TensorStore.open(TestModels.dir(model));
        return new Engine(config, DenseWeights.load(store, config), LocalExperts.fromStore(store, config));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void teacherForcedPass_matchesReference_argmaxRoutesAndLastLogits(GoldenCase g) {
        Engine engine = engine(g.model());
        ModelConfig c = engine.config();
        PagedKvCache cache = PagedKvCache.forTokens(c.numLayers(), c.kvDim(), 512);
        StepOutput out = engine.step(List.of(new SequenceStep(1, g.inputIds(), 0, SequenceStep.Logits.ALL, true)),
                cache).getFirst();
        int v = c.vocabSize();
        int[] argmax = new int[g.inputIds().length];
        for (int p = 0; p < argmax.length; p++) {
            argmax[p] = Sampler.argmax(out.logits(), p * v, v);
        }
        assertThat(argmax).containsExactly(g.allArgmax());
        for (int l = 0; l < c.numLayers(); l++) {
            for (int p = 0; p < g.inputIds().length; p++) {
                assertThat(out.routes()[l][p]).as("layer %d position %d", l, p).containsExactly(g.routerTopk()[l][p]);
            }
        }
        float[] last = new float[v];
        System.arraycopy(out.logits(), (argmax.length - 1) * v, last, 0, v);
        assertThat(last).containsExactly(g.lastLogits(), within(1e-4f));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void greedyDecode_matchesReference_idsAndStepTop8(GoldenCase g) {
        Engine engine = engine(g.model());
        ModelConfig c = engine.config();
        List<float[]> stepLogits = new ArrayList<>();
        // Record each decode step's logits through a dispatch-transparent listener: rerun steps by hand.
        PagedKvCache cache = PagedKvCache.forTokens(c.numLayers(), c.kvDim(), 512);
        StepOutput out = engine.step(List.of(new SequenceStep(7, g.inputIds(), 0, SequenceStep.Logits.LAST, false)),
                cache).getFirst();
        int[] ids = new int[g.greedyIds().length];
        int pos = g.inputIds().length;
        for (int s = 0; s < ids.length; s++) {
            stepLogits.add(out.logits());
            ids[s] = Sampler.argmax(out.logits(), 0, c.vocabSize());
            if (s + 1 < ids.length) {
                out = engine.step(List.of(SequenceStep.decode(7, ids[s], pos++)), cache).getFirst();
            }
        }
        assertThat(ids).containsExactly(g.greedyIds());
        for (int s = 0; s < ids.length; s++) {
            for (int r = 0; r < 8; r++) {
                assertThat(stepLogits.get(s)[g.greedyTop8Ids()[s][r]]).as("step %d rank %d", s, r)
                        .isCloseTo(g.greedyTop8Logits()[s][r], within(1e-3f));
            }
        }

        Generator generator = new Generator(engine, PagedKvCache.forTokens(c.numLayers(), c.kvDim(), 512), 64);
        GenerationResult r = generator.generate(List.of(new GenerationRequest(g.inputIds(),
                new SamplingParams(0, 1, 0, java.util.OptionalLong.empty(), ids.length, true), true)),
                (i, t) -> { }).getFirst();
        assertThat(r.generatedIds()).containsExactly(g.greedyIds());
        assertThat(r.lastLogits()).containsExactly(g.lastLogits(), within(1e-4f));
    }
}
