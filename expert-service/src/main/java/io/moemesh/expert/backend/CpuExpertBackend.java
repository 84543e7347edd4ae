package io.moemesh.expert.backend;

import io.moemesh.model.engine.ExpertFfn;
import io.moemesh.model.engine.ExpertGrouping;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.kernel.Matrix;
import io.moemesh.model.kernel.VectorOps;
import java.util.Arrays;

/**
 * The CPU backend: the same grouping, SwiGLU GEMMs and weighted scatter as the reference engine's
 * {@code LocalExperts}, in the same order, so a batch gives bit-identical outputs to the in-process engine.
 * Weights stay memory-mapped in the checkpoint dtype; "loading" an expert pre-faults its pages.
 */
public final class CpuExpertBackend implements ExpertBackend {
    private final ExpertModel model;
    /** ExpertFfn and ExpertGrouping keep scratch buffers and are not thread-safe: one set per worker thread. */
    private final ThreadLocal<Scratch> scratch = ThreadLocal.withInitial(Scratch::new);

    public CpuExpertBackend(ExpertModel model) {
        this.model = model;
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public LoadedExpert load(ExpertKey key) {
        ExpertWeights w = ExpertWeights.load(model.store(), model.config(), key);
        for (Matrix m : new Matrix[] {w.gate(), w.up(), w.down()}) {
            // A prefetched expert must really be in memory, not just mapped: touch every page now.
            if (m.data().isMapped()) {
                m.data().load();
            }
        }
        return new CpuExpert(w);
    }

    @Override
    public void compute(BatchInput batch, ExpertLookup experts, float[] out) {
        int hidden = model.hiddenSize();
        int dispatchable = model.dispatchableExperts();
        Scratch s = scratch.get();
        int pairs = batch.pairs();
        int[] pairToken = batch.pairTokens(s.pairTokens(pairs));
        Arrays.fill(out, 0, batch.tokens() * hidden, 0f);
        // One "token" per pair: the grouping is then the same stable per-expert order as LocalExperts'.
        s.grouping.group(batch.experts(), pairs, 1, dispatchable);
        for (int e = 0; e < dispatchable; e++) {
            int n = s.grouping.count(e);
            if (n == 0) {
                continue;
            }
            ExpertWeights w = weights(experts.get(new ExpertKey(batch.layer(), e)));
            float[] gathered = s.gathered(n * hidden);
            float[] result = s.result(n * hidden);
            int start = s.grouping.start(e);
            for (int i = 0; i < n; i++) {
                System.arraycopy(batch.x(), pairToken[s.grouping.pair(start + i)] * hidden, gathered, i * hidden, hidden);
            }
            s.ffn.apply(w, gathered, n, result);
            for (int i = 0; i < n; i++) {
                int pair = s.grouping.pair(start + i);
                VectorOps.axpy(batch.weights()[pair], result, i * hidden, out, pairToken[pair] * hidden, hidden);
            }
        }
    }

    private static ExpertWeights weights(LoadedExpert e) {
        if (e instanceof CpuExpert(ExpertWeights w)) {
            return w;
        }
        throw new IllegalStateException(e.key() + " was loaded by another backend (" + e.getClass().getSimpleName() + ")");
    }

    /** A CPU expert: mapped weight views in the checkpoint dtype. */
    public record CpuExpert(ExpertWeights weights) implements LoadedExpert {
        @Override
        public ExpertKey key() {
            return weights.key();
        }

        @Override
        public long byteSize() {
            return weights.byteSize();
        }
    }

    private static final class Scratch {
        final ExpertGrouping grouping = new ExpertGrouping();
        final ExpertFfn ffn = new ExpertFfn();
        private int[] pairTokens = new int[0];
        private float[] gathered = new float[0];
        private float[] result = new float[0];

        int[] pairTokens(int n) {
            if (pairTokens.length < n) {
                pairTokens = new int[n];
            }
            return pairTokens;
        }

        float[] gathered(int n) {
            if (gathered.length < n) {
                gathered = new float[n];
            }
            return gathered;
        }

        float[] result(int n) {
            if (result.length < n) {
                result = new float[n];
            }
            return result;
        }
    }
}
