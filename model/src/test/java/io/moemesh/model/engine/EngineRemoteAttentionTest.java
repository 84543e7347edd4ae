package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.synth.SynthArch;
import io.moemesh.model.synth.SynthDtype;
import io.moemesh.model.synth.SynthSpec;
import io.moemesh.model.synth.SyntheticCheckpoint;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalInt;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A sequence whose first R positions' keys and values live elsewhere (issue 11): the engine attends locally over
 * [R, pos], asks {@link RemoteAttention} for the partial over [0, R) and merges them, and gets the logits and
 * greedy tokens of the run that holds everything locally, in prefill (chunked, batched with a local sequence) and
 * decode, on the golden models and on a synthetic OLMoE with four query heads per KV head.
 */
class EngineRemoteAttentionTest {
    private static final String OLMOE_GQA4 = "olmoe-gqa4";
    private static final long REMOTE = 7;
    private static final long LOCAL = 8;
    private static final int DECODE_STEPS = 4;

    @TempDir
    static Path tmp;

    private static MoeModel open(String name) throws IOException {
        if (!name.equals(OLMOE_GQA4)) {
            return MoeModel.open(TestModels.dir(name));
        }
        Path dir = tmp.resolve(name);
        if (!dir.resolve("config.json").toFile().exists()) {
            // hidden 64, 8 query heads of 8 over 2 KV heads: GQA ratio 4 (the golden models have 2).
            SyntheticCheckpoint.write(new SynthSpec(SynthArch.OLMOE, 64, 24, 2, 8, 2, 8, 2, 512, OptionalInt.of(8),
                    OptionalInt.empty(), SynthDtype.F32, 256, 11), dir);
        }
        return MoeModel.open(dir);
    }

    private static Engine engine(MoeModel m, RemoteAttention remote) {
        ModelConfig c = m.config();
        return new Engine(c, m.denseWeights(), LocalExperts.fromStore(m.tensors(), c), RouteObserver.NONE,
                LookaheadObserver.NONE, remote);
    }

    private static int[] tokens(int n, int vocab, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = r.nextInt(vocab);
        }
        return ids;
    }

    static Stream<Arguments> cases() {
        return Stream.of(TestModels.MIXTRAL, TestModels.QWEN2_MOE, OLMOE_GQA4)
                .flatMap(m -> Stream.of(16, 32, 48).map(r -> Arguments.of(m, r)));
    }

    @ParameterizedTest(name = "{0} R={1}")
    @MethodSource("cases")
    void remotePrefix_prefillAndDecode_equalTheFullyLocalRun(String name, int r) throws IOException {
        try (MoeModel m = open(name)) {
            ModelConfig c = m.config();
            int vocab = c.vocabSize();
            int[] prompt = tokens(r + 11, vocab, r);
            int[] other = tokens(13, vocab, r + 1);

            // The whole context in the gateway's cache: the reference.
            PagedKvCache full = new PagedKvCache(c.numLayers(), c.kvDim(), 16, 16);
            Engine local = engine(m, RemoteAttention.NONE);
            List<StepOutput> pre = local.step(List.of(
                    new SequenceStep(REMOTE, prompt, 0, SequenceStep.Logits.ALL, false),
                    new SequenceStep(LOCAL, other, 0, SequenceStep.Logits.ALL, false)), full);
            float[][] fullDecode = new float[DECODE_STEPS][];
            float[][] fullOtherDecode = new float[DECODE_STEPS][];
            int[] greedy = new int[DECODE_STEPS];
            int[] greedyOther = new int[DECODE_STEPS];
            greedy[0] = argmax(pre.get(0).logits(), (prompt.length - 1) * vocab, vocab);
            greedyOther[0] = argmax(pre.get(1).logits(), (other.length - 1) * vocab, vocab);
            for (int i = 0; i < DECODE_STEPS; i++) {
                List<StepOutput> d = local.step(List.of(SequenceStep.decode(REMOTE, greedy[i], prompt.length + i),
                        SequenceStep.decode(LOCAL, greedyOther[i], other.length + i)), full);
                fullDecode[i] = d.get(0).logits();
                fullOtherDecode[i] = d.get(1).logits();
                if (i + 1 < DECODE_STEPS) {
                    greedy[i + 1] = argmax(fullDecode[i], 0, vocab);
                    greedyOther[i + 1] = argmax(fullOtherDecode[i], 0, vocab);
                }
            }

            // Positions [0, R) of the remote sequence only in the "service": the keys the full run wrote there.
            InMemoryRemoteAttention service = new InMemoryRemoteAttention(c.numKvHeads());
            service.copyPrefix(REMOTE, full, c.numLayers(), c.kvDim(), r);
            RemotePrefixKvCache cache = new RemotePrefixKvCache(new PagedKvCache(c.numLayers(), c.kvDim(), 16, 16));
            cache.setRemotePrefix(REMOTE, r);
            Engine split = engine(m, service);
            int chunk = 6;
            List<StepOutput> first = split.step(List.of(
                    new SequenceStep(REMOTE, Arrays.copyOfRange(prompt, r, r + chunk), r, SequenceStep.Logits.ALL,
                            false),
                    new SequenceStep(LOCAL, other, 0, SequenceStep.Logits.ALL, false)), cache);
            List<StepOutput> second = split.step(List.of(new SequenceStep(REMOTE,
                    Arrays.copyOfRange(prompt, r + chunk, prompt.length), r + chunk, SequenceStep.Logits.ALL,
                    false)), cache);
            float[] prefill = concat(first.get(0).logits(), second.get(0).logits());
            assertThat(prefill).as("prefill logits at positions [R, %d)", prompt.length).containsExactly(
                    Arrays.copyOfRange(pre.get(0).logits(), r * vocab, prompt.length * vocab), within(1e-5f));
            assertThat(first.get(1).logits()).as("the local sequence batched with it")
                    .containsExactly(pre.get(1).logits(), within(1e-5f));
            assertThat(argmax(prefill, (prompt.length - r - 1) * vocab, vocab)).isEqualTo(greedy[0]);
            for (int i = 0; i < DECODE_STEPS; i++) {
                List<StepOutput> d = split.step(List.of(SequenceStep.decode(REMOTE, greedy[i], prompt.length + i),
                        SequenceStep.decode(LOCAL, greedyOther[i], other.length + i)), cache);
                assertThat(d.get(0).logits()).as("decode step %d", i).containsExactly(fullDecode[i], within(1e-5f));
                assertThat(d.get(1).logits()).as("local decode step %d", i)
                        .containsExactly(fullOtherDecode[i], within(1e-5f));
                if (i + 1 < DECODE_STEPS) {
                    assertThat(argmax(d.get(0).logits(), 0, vocab)).as("greedy token %d", i + 1)
                            .isEqualTo(greedy[i + 1]);
                }
            }
            // One batched call per layer of every step that had a remote row: 2 prefill chunks and the decodes.
            assertThat(service.calls).isEqualTo(c.numLayers() * (2 + DECODE_STEPS));
            // The cache held only the positions from R on: blocks for [R, end) of one and [0, end) of the other.
            int held = (prompt.length + DECODE_STEPS - r + 15) / 16 + (other.length + DECODE_STEPS + 15) / 16;
            assertThat(((ForwardingKvCache) cache).pool().freeBlocks()).isEqualTo(16 - held);
        }
    }

    private static float[] concat(float[] a, float[] b) {
        float[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    static int argmax(float[] x, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (x[off + i] > x[off + best]) {
                best = i;
            }
        }
        return best;
    }
}
