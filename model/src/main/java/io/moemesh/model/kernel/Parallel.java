package io.moemesh.model.kernel;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * Splits a range of output rows across the machine's cores. One pool for all kernels, so concurrent callers
 * share the cores instead of oversubscribing them. Small ranges run on the caller's thread: forking costs
 * more than a few thousand FLOPs.
 */
public final class Parallel {
    /** Below this many multiply-adds a kernel call runs on one thread. */
    static final long MIN_PARALLEL_WORK = 1L << 17;
    private static final ForkJoinPool POOL = new ForkJoinPool(
            Integer.getInteger("moemesh.kernel.threads", Runtime.getRuntime().availableProcessors()));

    private Parallel() {
    }

    public static int threads() {
        return POOL.getParallelism();
    }

    /** Body over [from, to). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int from, int to);
    }

    /**
     * Runs {@code body} over [0, n) in chunks aligned to {@code align} rows. {@code workPerRow} is the number
     * of multiply-adds one row costs, to decide whether splitting pays.
     */
    public static void forRange(int n, int align, long workPerRow, RangeBody body) {
        int threads = POOL.getParallelism();
        if (threads <= 1 || n <= align || workPerRow * n < MIN_PARALLEL_WORK
                || java.util.concurrent.ForkJoinTask.getPool() == POOL) {
            body.run(0, n);
            return;
        }
        int chunks = Math.min(threads * 2, (n + align - 1) / align);
        int per = ((n + chunks - 1) / chunks + align - 1) / align * align;
        POOL.invoke(new Chunk(body, 0, n, per));
    }

    private static final class Chunk extends RecursiveAction {
        private final RangeBody body;
        private final int from;
        private final int to;
        private final int per;

        Chunk(RangeBody body, int from, int to, int per) {
            this.body = body;
            this.from = from;
            this.to = to;
            this.per = per;
        }

        @Override
        protected void compute() {
            if (to - from <= per) {
                body.run(from, to);
                return;
            }
            int mid = from + ((to - from) / per / 2) * per;
            if (mid <= from) {
                mid = from + per;
            }
            invokeAll(new Chunk(body, from, mid, per), new Chunk(body, mid, to, per));
        }
    }
}
