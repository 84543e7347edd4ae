package io.moemesh.model.synth;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.engine.DenseWeights;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.safetensors.TensorStore;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** A synthetic checkpoint is a model the project's own config reader, weight loader and engine accept and run. */
class SynthEngineLoadTest {

    @TempDir
    Path dir;

    static Stream<Arguments> specs() {
        return Stream.of(SynthArch.values()).flatMap(arch -> Stream.of(SynthDtype.values())
                .map(dtype -> Arguments.of(arch, dtype)));
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("specs")
    void write_thenLoad_configMatchesSpecAndEngineGivesFiniteLogits(SynthArch arch, SynthDtype dtype)
            throws IOException {
        SynthSpec spec = SynthCheckpointTest.tiny(arch).withDtype(dtype);
        SyntheticCheckpoint.write(spec, dir);

        ModelConfig c = ModelConfigReader.read(dir);
        assertThat(c.architecture().modelType()).isEqualTo(arch.modelType());
        assertThat(c.hiddenSize()).isEqualTo(spec.hidden());
        assertThat(c.expertIntermediateSize()).isEqualTo(spec.intermediate());
        assertThat(c.sharedExpertIntermediateSize())
                .isEqualTo(arch == SynthArch.QWEN2_MOE ? spec.sharedExpertIntermediate() : 0);
        assertThat(c.numLayers()).isEqualTo(spec.layers());
        assertThat(c.numHeads()).isEqualTo(spec.heads());
        assertThat(c.numKvHeads()).isEqualTo(spec.kvHeads());
        assertThat(c.headDim()).isEqualTo(spec.effectiveHeadDim());
        assertThat(c.vocabSize()).isEqualTo(spec.vocab());
        assertThat(c.numExperts()).isEqualTo(spec.experts());
        assertThat(c.topK()).isEqualTo(spec.topK());
        assertThat(c.dtype()).isEqualTo(dtype.configName());

        try (TensorStore store = TensorStore.open(dir)) {
            Engine engine = new Engine(c, DenseWeights.load(store, c), LocalExperts.fromStore(store, c));
            PagedKvCache cache = PagedKvCache.forTokens(c.numLayers(), c.kvDim(), 64);
            int[] prompt = {0, 5, 77, 300, 511};
            StepOutput out = engine.step(List.of(new SequenceStep(1, prompt, 0, SequenceStep.Logits.LAST, false)),
                    cache).getFirst();
            assertThat(out.logits()).hasSize(spec.vocab());
            for (float logit : out.logits()) {
                assertThat(Float.isFinite(logit)).isTrue();
            }
        }
    }
}
