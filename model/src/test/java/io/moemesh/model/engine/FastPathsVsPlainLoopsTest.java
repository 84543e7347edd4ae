package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.safetensors.TensorStore;
import io.moemesh.model.synth.SynthArch;
import io.moemesh.model.synth.SynthDtype;
import io.moemesh.model.synth.SynthSpec;
import io.moemesh.model.synth.SyntheticCheckpoint;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The engine's fast paths (Vector API GEMMs, paged KV, batched and chunked steps) against plain scalar loops
 * on odd shapes the golden models do not cover: head_dim 8, GQA ratio 4, top-4 of 16 experts, every architecture.
 */
class FastPathsVsPlainLoopsTest {
    @TempDir
    static Path tmp;

    private static Path synth(SynthArch arch, SynthDtype dtype) throws IOException {
        Path dir = tmp.resolve(arch.cliName() + "-" + dtype.cliName());
        if (!dir.resolve("config.json").toFile().exists()) {
            SyntheticCheckpoint.write(new SynthSpec(arch, 64, 24, 2, 16, 4, 8, 2, 512, OptionalInt.of(8),
                    OptionalInt.empty(), dtype, 256, 7), dir);
        }
        return dir;
    }

    private static int[] prompt(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt(512);
        }
        return ids;
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"MIXTRAL, F32", "MIXTRAL, BF16", "QWEN2_MOE, F32", "QWEN2_MOE, BF16", "OLMOE, F32", "OLMOE, BF16"})
    void engine_equalsPlainLoops_logitsAndRoutes(SynthArch arch, SynthDtype dtype) throws IOException {
        Path dir = synth(arch, dtype);
        ModelConfig c = ModelConfigReader.read(dir);
        try (TensorStore store = TensorStore.open(dir)) {
            int[] ids = prompt(37, arch.ordinal());
            PlainLoopsReference.Result ref = new PlainLoopsReference(c, store).forward(ids);
            Engine engine = new Engine(c, DenseWeights.load(store, c), LocalExperts.fromStore(store, c));
            StepOutput out = engine.step(List.of(new SequenceStep(1, ids, 0, SequenceStep.Logits.ALL, true)),
                    PagedKvCache.forTokens(c.numLayers(), c.kvDim(), 64)).getFirst();
            for (int p = 0; p < ids.length; p++) {
                float[] row = new float[c.vocabSize()];
                System.arraycopy(out.logits(), p * c.vocabSize(), row, 0, row.length);
                assertThat(row).as("position %d", p).containsExactly(ref.logits()[p], within(1e-4f));
                for (int l = 0; l < c.numLayers(); l++) {
                    assertThat(out.routes()[l][p]).as("layer %d position %d", l, p).containsExactly(ref.routes()[l][p]);
                }
            }
        }
    }

    /** Batching invariance: sequences stepped together, prefill chunked, equal each sequence run alone. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"MIXTRAL", "QWEN2_MOE", "OLMOE"})
    void batchedChunkedSteps_equalSingleSequenceRuns(SynthArch arch) throws IOException {
        Path dir = synth(arch, SynthDtype.BF16);
        ModelConfig c = ModelConfigReader.read(dir);
        try (TensorStore store = TensorStore.open(dir)) {
            Engine engine = new Engine(c, DenseWeights.load(store, c), LocalExperts.fromStore(store, c));
            int[][] prompts = {prompt(5, 1), prompt(23, 2), prompt(40, 3)};
            List<float[]> alone = new ArrayList<>();
            for (int[] p : prompts) {
                alone.add(engine.step(List.of(new SequenceStep(9, p, 0, SequenceStep.Logits.LAST, false)),
                        PagedKvCache.forTokens(c.numLayers(), c.kvDim(), 64)).getFirst().logits());
            }
            PagedKvCache shared = new PagedKvCache(c.numLayers(), c.kvDim(), 16, 12);
            float[][] together = new float[3][];
            // Chunks of 7 tokens per sequence per step, all three sequences in every step.
            for (int start = 0; start < 40; start += 7) {
                List<SequenceStep> batch = new ArrayList<>();
                List<Integer> who = new ArrayList<>();
                for (int s = 0; s < 3; s++) {
                    if (start < prompts[s].length) {
                        int end = Math.min(prompts[s].length, start + 7);
                        int[] chunk = java.util.Arrays.copyOfRange(prompts[s], start, end);
                        batch.add(new SequenceStep(100 + s, chunk, start,
                                end == prompts[s].length ? SequenceStep.Logits.LAST : SequenceStep.Logits.NONE, false));
                        who.add(s);
                    }
                }
                List<StepOutput> outs = engine.step(batch, shared);
                for (int i = 0; i < outs.size(); i++) {
                    if (outs.get(i).rows() > 0) {
                        together[who.get(i)] = outs.get(i).logits();
                    }
                }
            }
            for (int s = 0; s < 3; s++) {
                assertThat(together[s]).as("sequence %d", s).containsExactly(alone.get(s), within(1e-5f));
            }
        }
    }
}
