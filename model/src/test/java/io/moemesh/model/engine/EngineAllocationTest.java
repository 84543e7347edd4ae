package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kernel.MatMul;
import io.moemesh.model.safetensors.TensorStore;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The decode loop allocates nothing per layer: once warmed up, a step allocates only what it returns (its
 * StepOutputs, their logits and the list), on the calling thread and on the kernel threads alike.
 */
class EngineAllocationTest {

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE})
    void warmDecodeStep_allocatesOnlyItsOutputs(String name) {
        ModelConfig c = ModelConfigReader.read(TestModels.dir(name));
        try (TensorStore store = TensorStore.open(TestModels.dir(name))) {
            Engine engine = new Engine(c, DenseWeights.load(store, c), LocalExperts.fromStore(store, c));
            int seqs = 4;
            int steps = 100;
            PagedKvCache cache = PagedKvCache.forTokens(c.numLayers(), c.kvDim(), seqs * 160);
            var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
            List<SequenceStep> batch = new ArrayList<>();
            long perStep = Long.MAX_VALUE;
            // The outputs: seqs logits arrays and records, the list, and this test's own batch records.
            long outputs = seqs * (16L + 4L * c.vocabSize() + 32 + 64 + 48) + 256;
            // Rounds of 100 decode steps until one stays under the bound: until C2 has compiled the vector code,
            // the interpreter and C1 allocate boxed vectors (longer on a loaded machine).
            MatMul.warmUp();
            for (int round = 0; round < 60 && perStep >= outputs + 1024; round++) {
                batch.clear();
                for (int s = 0; s < seqs; s++) {
                    batch.add(new SequenceStep(s, new int[] {1, 2, 3, 4 + s}, 0, SequenceStep.Logits.LAST, false));
                }
                engine.step(batch, cache);
                long before = allocated(threads);
                for (int i = 0; i < steps; i++) {
                    batch.clear();
                    for (int s = 0; s < seqs; s++) {
                        batch.add(SequenceStep.decode(s, (i * 7 + s) % 500 + 1, 4 + i));
                    }
                    engine.step(batch, cache);
                }
                perStep = Math.min(perStep, (allocated(threads) - before) / steps);
                for (int s = 0; s < seqs; s++) {
                    cache.release(s);
                }
            }
            assertThat(perStep).as("bytes per step with %d layers", c.numLayers()).isLessThan(outputs + 1024);
        }
    }

    private static long allocated(com.sun.management.ThreadMXBean threads) {
        long sum = threads.getCurrentThreadAllocatedBytes();
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith("moemesh-kernel-")) {
                sum += threads.getThreadAllocatedBytes(t.threadId());
            }
        }
        return sum;
    }
}
