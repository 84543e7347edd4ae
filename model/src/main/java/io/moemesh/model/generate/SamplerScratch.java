package io.moemesh.model.generate;

/**
 * The working arrays of {@link Sampler#sample}: 24 bytes per vocabulary entry (the scaled scores and a copy for
 * top-k's quickselect in double, the draw order and the merge sort's buffer in int), 3.5 MiB at a vocabulary of
 * 151,936. One per thread that samples, shared by every sequence it samples for (a {@link StepScheduler} owns one
 * for its engine thread): per sampler they were kept for each sequence's whole life, ~890 MiB at 256 running
 * sequences, more with preempted ones. Nothing in it carries over from one draw to the next (each overwrites what
 * it reads), so sharing it cannot change a draw: a sequence's random state stays in its own {@link Sampler}.
 * Not thread-safe.
 */
public final class SamplerScratch {
    private static final int BYTES_PER_TOKEN = 2 * Double.BYTES + 2 * Integer.BYTES;

    double[] scaled = new double[0];
    double[] work = new double[0];
    int[] order = new int[0];
    int[] merge = new int[0];
    final double[] bucketMass;
    /** Times the arrays were allocated: once per larger vocabulary. */
    private int allocations;

    public SamplerScratch() {
        this.bucketMass = new double[Sampler.BUCKETS];
    }

    /** Arrays of at least {@code vocab} entries (kept when large enough: they only ever grow). */
    void ensure(int vocab) {
        if (scaled.length < vocab) {
            scaled = new double[vocab];
            work = new double[vocab];
            order = new int[vocab];
            merge = new int[vocab];
            allocations++;
        }
    }

    /** Bytes of the per-token arrays: 24 per entry of the largest vocabulary sampled so far. */
    long bytes() {
        return (long) scaled.length * BYTES_PER_TOKEN;
    }

    /** Times the per-token arrays were allocated (for tests: once per larger vocabulary, never per sequence). */
    int allocations() {
        return allocations;
    }
}
