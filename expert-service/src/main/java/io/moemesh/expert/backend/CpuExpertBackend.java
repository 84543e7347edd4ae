package io.moemesh.expert.backend;

import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.engine.GroupedExperts;
import io.moemesh.model.kernel.Matrix;
import io.moemesh.model.kernel.Parallel;
import java.util.Objects;

/**
 * The CPU backend: the reference engine's own grouped-expert loop ({@link GroupedExperts}: grouping, SwiGLU
 * GEMMs and weighted scatter in the same order as {@code LocalExperts}), so a batch gives the in-process engine's
 * outputs by construction. Weights stay memory-mapped in the checkpoint dtype; "loading" an expert pre-faults its
 * pages.
 */
public final class CpuExpertBackend implements ExpertBackend {
    /**
     * Scratch bytes a computing thread keeps for its next batch. The grouped loop's buffers grow to the largest
     * expert group it has computed (for n rows of one expert: the gathered rows and their results, [n, hidden] each,
     * and the SwiGLU's gate and up, [n, intermediate] each) and never shrink, so kept per thread, one prefill batch
     * of a few thousand tokens left every worker (and event loop) holding that much for good: gigabytes at real
     * model sizes. A batch whose scratch could pass this bound computes with a loop of its own, dropped with it.
     */
    static final long RETAINED_SCRATCH_BYTES = 32L << 20;

    private final ExpertModel model;
    /** The loop keeps scratch buffers and is not thread-safe: one per worker thread. */
    private final ThreadLocal<GroupedExperts> loops;
    /** Kernel threads a batch is split over, by its size. */
    private final KernelThreads kernelThreads;
    /** Rows of the largest expert group computed with the thread's kept loop. */
    private final long retainedRows;

    /** A backend that splits every batch over all the kernel's threads (an instance with cores of its own). */
    public CpuExpertBackend(ExpertModel model) {
        this(model, KernelThreads.EVERY_CORE);
    }

    /**
     * @param kernelThreads kernel threads (the computing thread included) that a batch is split over, by its size:
     *                      instances sharing a host's cores each keep to their share when they compute at the same
     *                      moment (docs/performance.md: at 32 sequences on two shared cores 0.86-0.97 of the
     *                      monolithic engine's decode rate against 0.81 with every core)
     */
    public CpuExpertBackend(ExpertModel model, KernelThreads kernelThreads) {
        this(model, kernelThreads, RETAINED_SCRATCH_BYTES);
    }

    /** @param retainedScratchBytes scratch a computing thread keeps between batches (tests use a tiny one) */
    CpuExpertBackend(ExpertModel model, KernelThreads kernelThreads, long retainedScratchBytes) {
        this.model = model;
        this.loops = ThreadLocal.withInitial(this::newLoop);
        this.kernelThreads = Objects.requireNonNull(kernelThreads, "kernelThreads");
        int intermediate = Math.max(model.config().expertIntermediateSize(),
                model.config().sharedExpertIntermediateSize());
        // Per row of an expert group: two [hidden] and two [intermediate] float rows.
        long scratchBytesPerRow = 2L * Float.BYTES * ((long) model.hiddenSize() + intermediate);
        this.retainedRows = retainedScratchBytes / scratchBytesPerRow;
    }

    private GroupedExperts newLoop() {
        return new GroupedExperts(model.hiddenSize(), model.dispatchableExperts());
    }

    @Override
    public String name() {
        return "cpu";
    }

    /**
     * A decode step of one to a few sequences sends an instance one or two expert passes of 1-4 tokens per layer:
     * each a read of the experts' weights (about 1 ms per 17 MB expert of synth model M), where waking a compute
     * worker and waiting for a core added 0.2-0.5 ms per call on a shared host. Such batches run on the event loop
     * that read them (the kernels still split rows over the helper threads, whose region always ends: the caller
     * takes every chunk no helper claimed). Measured with 2 meshes side by side, 1-sequence greedy decode on synth
     * M: 59.0 against 51.2 tok/s; at 4 sequences (about 3.4 tokens per call) 72.1 against 70.7; with 7 and 25
     * tokens per call the event loop was 6-11% slower than the workers (docs/performance.md), so larger batches
     * keep going to the workers.
     */
    static final int INLINE_MAX_TOKENS = 4;

    @Override
    public int inlineMaxTokens() {
        return INLINE_MAX_TOKENS;
    }

    /** The kernel helpers park at once instead of spinning: on a shared host the gateway computes meanwhile. */
    @Override
    public void idle() {
        Parallel.parkHelpers();
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
        int bound = kernelThreads.forTokens(batch.tokens());
        if (bound > 0 && bound < Parallel.threads()) {
            Parallel.withThreads(bound, () -> computeOnKernelThreads(batch, experts, out));
        } else {
            computeOnKernelThreads(batch, experts, out);
        }
    }

    private void computeOnKernelThreads(BatchInput batch, ExpertLookup experts, float[] out) {
        GroupedExperts loop = loopFor(batch);
        int pairs = batch.pairs();
        int[] pairTokens = batch.pairTokens(loop.pairTokens(pairs));
        loop.compute(batch.layer(), batch.x(), batch.tokens(), batch.experts(), batch.weights(), pairs, pairTokens,
                (layer, e) -> weights(experts.get(new ExpertKey(layer, e))), out);
    }

    /**
     * The thread's kept loop when the batch's largest expert group fits {@link #RETAINED_SCRATCH_BYTES}, else a loop
     * for this batch only (its scratch is garbage once the batch is computed).
     */
    GroupedExperts loopFor(BatchInput batch) {
        return largestGroup(batch) <= retainedRows ? loops.get() : newLoop();
    }

    /**
     * Rows of the batch's largest expert group (pairs of one expert), or the pair count (never fewer) when that
     * already fits.
     */
    private long largestGroup(BatchInput batch) {
        int pairs = batch.pairs();
        if (pairs <= retainedRows) {
            return pairs; // a decode step: no count needed
        }
        int[] rows = new int[model.dispatchableExperts()];
        int largest = 0;
        for (int i = 0; i < pairs; i++) {
            largest = Math.max(largest, ++rows[batch.experts()[i]]);
        }
        return largest;
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
