package io.moemesh.expert.backend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.expert.support.Routing;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.TestSteps;
import io.moemesh.model.golden.TestModels;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class CpuExpertBackendTest {

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE})
    void cpuBackend_equalsReferenceLocalExperts_onEveryLayer_includingSharedExpert(String name) {
        try (ExpertModel model = ExpertModel.open(TestModels.dir(name))) {
            ModelConfig c = model.config();
            LocalExperts reference = LocalExperts.fromStore(model.store(), c);
            CpuExpertBackend backend = new CpuExpertBackend(model);
            ResidentSet resident = new ResidentSet(Long.MAX_VALUE, backend::load);
            for (int layer = 0; layer < c.numLayers(); layer++) {
                for (int tokens : new int[] {1, 5, 33}) {
                    Routing r = Routing.random(c, layer, tokens, 31L * layer + tokens);
                    float[] want = new float[tokens * c.hiddenSize()];
                    reference.run(TestSteps.rows(tokens), layer, r.x(), r.experts(), r.weights(), r.pairsPerToken(),
                            want);
                    float[] got = new float[tokens * c.hiddenSize()];
                    backend.compute(r.input(), resident::acquire, got);
                    // Same kernels, and their bits do not depend on the JIT tier (JitTierBitsTest): exact.
                    assertThat(got).as("layer %d, %d tokens", layer, tokens).containsExactly(want);
                }
            }
            if (c.hasSharedExpert()) {
                assertThat(resident.residentExperts()).anyMatch(k -> k.expert() == c.numExperts());
            }
        }
    }

    /**
     * An instance that keeps to its share of a shared host's cores computes the same bits, for small and large
     * batches: each output row is computed whole by one thread, whichever threads the rows are split over.
     */
    @ParameterizedTest(name = "{0} kernel thread(s) for small, {1} for large batches")
    @CsvSource({"1, 1", "2, 2", "3, 3", "1, 0", "0, 1", "0, 0"})
    void kernelThreads_sameBitsAsEveryCore_forSmallAndLargeBatches(int small, int large) {
        try (ExpertModel model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL_BF16))) {
            ModelConfig c = model.config();
            CpuExpertBackend everyCore = new CpuExpertBackend(model);
            CpuExpertBackend bounded = new CpuExpertBackend(model, new KernelThreads(small, large));
            ResidentSet resident = new ResidentSet(Long.MAX_VALUE, everyCore::load);
            for (int tokens : new int[] {1, CpuExpertBackend.INLINE_MAX_TOKENS, CpuExpertBackend.INLINE_MAX_TOKENS + 1,
                    64}) {
                Routing r = Routing.random(c, tokens % c.numLayers(), tokens, 17L * tokens);
                float[] want = new float[tokens * c.hiddenSize()];
                everyCore.compute(r.input(), resident::acquire, want);
                float[] got = new float[tokens * c.hiddenSize()];
                bounded.compute(r.input(), resident::acquire, got);
                assertThat(got).as("%d tokens", tokens).containsExactly(want);
            }
        }
    }

    @Test
    void variableExpertCounts_sumWeightedFfnPerToken_andTokenWithoutPairsIsZero() {
        try (ExpertModel model = ExpertModel.open(TestModels.dir(TestModels.QWEN2_MOE))) {
            ModelConfig c = model.config();
            int h = c.hiddenSize();
            LocalExperts reference = LocalExperts.fromStore(model.store(), c);
            CpuExpertBackend backend = new CpuExpertBackend(model);
            Routing base = Routing.random(c, 2, 4, 7);
            int[] counts = {2, 0, 1, 3};
            int[] experts = {3, 12, 5, 0, 5, 11};
            float[] weights = {0.5f, 1f, 0.25f, 0.125f, 2f, 0.75f};
            float[] got = new float[4 * h];
            backend.compute(new BatchInput(2, 4, base.x(), counts, experts, weights), backend::load, got);

            float[] want = new float[4 * h];
            float[] one = new float[h];
            int p = 0;
            for (int t = 0; t < 4; t++) {
                float[] xt = java.util.Arrays.copyOfRange(base.x(), t * h, (t + 1) * h);
                for (int j = 0; j < counts[t]; j++, p++) {
                    reference.run(TestSteps.rows(1), 2, xt, new int[] {experts[p]}, new float[] {weights[p]}, 1, one);
                    for (int i = 0; i < h; i++) {
                        want[t * h + i] += one[i];
                    }
                }
            }
            for (int i = 0; i < want.length; i++) {
                assertThat(got[i]).as("element %d", i).isCloseTo(want[i], within(1e-5f + Math.abs(want[i]) * 1e-5f));
            }
            assertThat(java.util.Arrays.copyOfRange(got, h, 2 * h)).containsOnly(0f);
        }
    }

    @Test
    void concurrentBatches_onSeveralThreads_giveWhatOneThreadGives() throws Exception {
        try (ExpertModel model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL_BF16));
             ExecutorService pool = Executors.newFixedThreadPool(4)) {
            ModelConfig c = model.config();
            CpuExpertBackend backend = new CpuExpertBackend(model);
            ResidentSet resident = new ResidentSet(Long.MAX_VALUE, backend::load);
            List<Routing> batches = new ArrayList<>();
            List<float[]> expected = new ArrayList<>();
            for (int i = 0; i < 24; i++) {
                Routing r = Routing.random(c, i % c.numLayers(), 1 + (i * 7) % 40, i);
                float[] out = new float[r.tokens() * c.hiddenSize()];
                backend.compute(r.input(), resident::acquire, out);
                batches.add(r);
                expected.add(out);
            }
            List<Future<float[]>> results = new ArrayList<>();
            for (Routing r : batches) {
                Callable<float[]> task = () -> {
                    float[] out = new float[r.tokens() * c.hiddenSize()];
                    backend.compute(r.input(), resident::acquire, out);
                    return out;
                };
                results.add(pool.submit(task));
            }
            for (int i = 0; i < batches.size(); i++) {
                // Cross-talk between concurrent batches (shared scratch) would show as rows off; the kernels' bits do
                // not depend on the thread or the JIT tier, so any difference is one.
                assertThat(results.get(i).get()).as("batch %d", i).containsExactly(expected.get(i));
            }
        }
    }

    @Test
    void noOpBackend_isIdentityExperts_soOutputIsWeightSumTimesInput_andReadsNoWeights() {
        NoOpExpertBackend noop = new NoOpExpertBackend(3);
        float[] x = {1, 2, 3, 4, 5, 6};
        float[] out = new float[6];
        noop.compute(new BatchInput(0, 2, x, new int[] {2, 0}, new int[] {1, 4}, new float[] {0.5f, 0.25f}),
                k -> { throw new AssertionError("noop must not look up weights"); }, out);
        assertThat(out).containsExactly(0.75f, 1.5f, 2.25f, 0, 0, 0);
        assertThat(noop.load(new io.moemesh.model.engine.ExpertKey(0, 1)).byteSize()).isZero();
    }

    @Test
    void backendByName_unknownName_isRefusedListingTheKnownOnes() {
        try (ExpertModel model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL))) {
            assertThat(ExpertBackends.create("noop", model).name()).isEqualTo("noop");
            assertThat(ExpertBackends.create("cpu", model).name()).isEqualTo("cpu");
            assertThatThrownBy(() -> ExpertBackends.create("cuda", model))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("cuda").hasMessageContaining("noop");
        }
    }

    /**
     * A computing thread keeps its grouped loop (whose scratch grows to the largest expert group it computed, and
     * never shrinks) only for batches within the retained bound, here 4 rows of mixtral-tiny (4 × 2 × (64 + 96)
     * floats): a batch with a larger expert group computes with a loop of its own, which goes with it, and gives
     * the same bits.
     */
    @Test
    void batchWhoseExpertGroupPassesTheRetainedScratch_computesWithALoopOfItsOwn_andTheThreadKeepsItsSmallOne() {
        try (ExpertModel model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL))) {
            ModelConfig c = model.config();
            long fourRows = 4L * 2 * Float.BYTES * (c.hiddenSize() + c.expertIntermediateSize());
            CpuExpertBackend bounded = new CpuExpertBackend(model, KernelThreads.EVERY_CORE, fourRows);
            CpuExpertBackend unbounded = new CpuExpertBackend(model);
            ResidentSet resident = new ResidentSet(Long.MAX_VALUE, unbounded::load);
            BatchInput fourOfExpert0 = oneExpertPerToken(c, 4, t -> 0);
            BatchInput fiveOfExpert0 = oneExpertPerToken(c, 5, t -> 0);
            BatchInput sixteenSpread = oneExpertPerToken(c, 16, t -> t % c.numExperts()); // groups of 2 rows

            var kept = bounded.loopFor(fourOfExpert0);
            assertThat(bounded.loopFor(fourOfExpert0)).as("the thread's loop, reused").isSameAs(kept);
            assertThat(bounded.loopFor(sixteenSpread)).as("16 pairs, but no group past 4 rows").isSameAs(kept);
            assertThat(bounded.loopFor(fiveOfExpert0)).as("a group of 5 rows").isNotSameAs(kept)
                    .isNotSameAs(bounded.loopFor(fiveOfExpert0));
            assertThat(bounded.loopFor(fourOfExpert0)).as("still the thread's small loop").isSameAs(kept);

            for (BatchInput in : List.of(fiveOfExpert0, fourOfExpert0, sixteenSpread)) {
                float[] want = new float[in.tokens() * c.hiddenSize()];
                unbounded.compute(in, resident::acquire, want);
                float[] got = new float[in.tokens() * c.hiddenSize()];
                bounded.compute(in, resident::acquire, got);
                assertThat(got).as("%d tokens", in.tokens()).containsExactly(want);
            }
        }
    }

    private static BatchInput oneExpertPerToken(ModelConfig c, int tokens, java.util.function.IntUnaryOperator expert) {
        int[] counts = new int[tokens];
        int[] experts = new int[tokens];
        float[] weights = new float[tokens];
        for (int t = 0; t < tokens; t++) {
            counts[t] = 1;
            experts[t] = expert.applyAsInt(t);
            weights[t] = 0.25f + t;
        }
        return new BatchInput(0, tokens, Routing.random(c, 0, tokens, tokens).x(), counts, experts, weights);
    }

    @Test
    void load_makesExpertComputeReady_withItsWeightBytes() {
        try (ExpertModel model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL_BF16))) {
            ModelConfig c = model.config();
            LoadedExpert e = new CpuExpertBackend(model).load(new io.moemesh.model.engine.ExpertKey(3, 7));
            // gate + up + down of one expert, 2 bytes per bf16 weight
            assertThat(e.byteSize()).isEqualTo(3L * c.hiddenSize() * c.expertIntermediateSize() * 2);
        }
    }
}
