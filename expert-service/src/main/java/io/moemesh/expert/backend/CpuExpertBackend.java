package io.moemesh.expert.backend;

import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.engine.GroupedExperts;
import io.moemesh.model.kernel.Matrix;
import io.moemesh.model.kernel.Parallel;

/**
 * The CPU backend: the reference engine's own grouped-expert loop ({@link GroupedExperts}: grouping, SwiGLU
 * GEMMs and weighted scatter in the same order as {@code LocalExperts}), so a batch gives the in-process engine's
 * outputs by construction. Weights stay memory-mapped in the checkpoint dtype; "loading" an expert pre-faults its
 * pages.
 */
public final class CpuExpertBackend implements ExpertBackend {
    private final ExpertModel model;
    /** The loop keeps scratch buffers and is not thread-safe: one per worker thread. */
    private final ThreadLocal<GroupedExperts> loops;

    public CpuExpertBackend(ExpertModel model) {
        this.model = model;
        this.loops = ThreadLocal.withInitial(() -> new GroupedExperts(model.hiddenSize(), model.dispatchableExperts()));
    }

    @Override
    public String name() {
        return "cpu";
    }

    /**
     * With more than one kernel thread every GEMM of a batch runs on all of them ({@link Parallel}); a second batch
     * computed meanwhile finds the helpers busy, runs single-threaded beside them and makes the first batch spin
     * in its region's join while a descheduled helper waits for a core (docs/performance.md, ping-pong on two
     * cores: twice the CPU per token in the compute workers).
     */
    @Override
    public boolean computesOnAllCores() {
        return Parallel.threads() > 1;
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
        GroupedExperts loop = loops.get();
        int pairs = batch.pairs();
        int[] pairTokens = batch.pairTokens(loop.pairTokens(pairs));
        loop.compute(batch.layer(), batch.x(), batch.tokens(), batch.experts(), batch.weights(), pairs, pairTokens,
                (layer, e) -> weights(experts.get(new ExpertKey(layer, e))), out);
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
}
