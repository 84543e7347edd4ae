package io.moemesh.model.kernel;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Splits a range of output rows across the machine's cores. A decode step runs ~10 parallel regions per layer,
 * each only 50-300 µs long, so the hand-off must cost a few µs, not the tens of µs it takes to wake a parked
 * ForkJoinPool worker: the calling thread works too, and helper threads spin for {@link #SPIN_NANOS} after
 * each region before they park.
 *
 * <p>The range is cut into a few contiguous chunks per thread (each chunk's weight rows are read sequentially)
 * that the threads claim from a counter. A helper that the OS has descheduled (another process on the core)
 * therefore only delays the chunk it holds: the caller takes every chunk left and, if the helper never joined,
 * closes the region without it.
 *
 * <p>One set of helpers serves all kernels. A caller that arrives while another region runs (a second engine, a
 * nested call) runs its range on its own thread instead of waiting, so concurrent callers never oversubscribe
 * the cores nor deadlock. Threads: {@code -Dmoemesh.kernel.threads} (default: all cores); fewer for the regions
 * opened inside {@link #withThreads}.
 */
public final class Parallel {
    /** Below this many multiply-adds a region runs on the caller's thread: the hand-off costs more. */
    static final long MIN_PARALLEL_WORK = 1L << 15;
    /** Chunks per thread: enough to rebalance around a descheduled helper, few enough to stream sequentially. */
    private static final int CHUNKS_PER_THREAD = 4;
    /** How long an idle helper spins before it parks: longer than the serial gap between two regions. */
    static final long SPIN_NANOS = Long.getLong("moemesh.kernel.spinMicros", 100) * 1000;
    private static final int THREADS = Math.max(1,
            Integer.getInteger("moemesh.kernel.threads", Runtime.getRuntime().availableProcessors()));
    private static final ReentrantLock LOCK = new ReentrantLock();
    private static final Region REGION = new Region();
    private static final Thread[] HELPERS = new Thread[THREADS - 1];
    /** Bumped once per region; helpers wait for it to change. */
    private static volatile long generation;
    /** Set by {@link #parkHelpers}, cleared when a region opens: idle helpers park at once instead of spinning. */
    private static volatile boolean resting;
    /** {@code -Dmoemesh.kernel.parkOnWait=false} ignores {@link #parkHelpers} (helpers always spin first). */
    private static final boolean PARK_HINTS = Boolean.parseBoolean(System.getProperty("moemesh.kernel.parkOnWait", "true"));

    static {
        for (int i = 0; i < HELPERS.length; i++) {
            HELPERS[i] = Thread.ofPlatform().daemon().name("moemesh-kernel-" + (i + 1)).start(Parallel::helperLoop);
        }
    }

    /** A bound on the threads of the regions opened inside {@link #withThreads}; unbound: {@link #THREADS}. */
    private static final ScopedValue<Integer> BOUND = ScopedValue.newInstance();

    private Parallel() {
    }

    /**
     * Runs {@code work} with every region it opens split over at most {@code threads} threads, the caller included
     * (1: on the calling thread alone, no helper woken). For two kinds of caller: background work at a low priority
     * (the kernel warm-up), which must neither wake the helpers, whose spinning would take normal-priority CPU for
     * it, nor hold them while a request waits; and a process that shares the host's cores with others that compute
     * at the same moment (an expert-service's batch of a many-sequence step, while the other instances on the host
     * compute theirs), where splitting over every core would put more kernel threads than cores on the host and a
     * region's caller would spin while a descheduled helper finishes its chunk. A bound above {@link #threads()}
     * changes nothing.
     */
    public static void withThreads(int threads, Runnable work) {
        if (threads < 1) {
            throw new IllegalArgumentException("a region needs at least 1 thread, got " + threads);
        }
        ScopedValue.where(BOUND, threads).run(work);
    }

    /**
     * Tells the helpers that no region follows soon: the caller is about to wait for a remote reply (the gateway for
     * an expert hop, an expert-service for the gateway's next layer) that takes longer than {@link #SPIN_NANOS}. Idle
     * helpers then park at once instead of spinning, which on a host whose cores the mesh's processes share would take
     * a core from the process that computes meanwhile. The next region unparks them as always.
     */
    public static void parkHelpers() {
        if (PARK_HINTS && HELPERS.length > 0 && !resting) {
            resting = true;
        }
    }

    /** Whether a {@link #parkHelpers} hint holds (no region opened since). */
    static boolean resting() {
        return resting;
    }

    public static int threads() {
        return THREADS;
    }

    /** Body over [from, to). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int from, int to);
    }

    /**
     * Runs {@code body} over [0, n) in chunks whose bounds are multiples of {@code align} (except n).
     * {@code workPerRow} is the multiply-adds one row costs, to decide whether splitting pays.
     */
    public static void forRange(int n, int align, long workPerRow, RangeBody body) {
        int threads = Math.min(THREADS, BOUND.orElse(THREADS));
        if (threads == 1 || n <= align || workPerRow * n < MIN_PARALLEL_WORK
                || LOCK.isHeldByCurrentThread()
                || !LOCK.tryLock()) {
            body.run(0, n);
            return;
        }
        try {
            Region r = REGION;
            r.open(body, n, align, threads);
            if (resting) {
                resting = false;
            }
            generation = generation + 1;
            for (int i = 0; i < threads - 1; i++) {
                LockSupport.unpark(HELPERS[i]);
            }
            r.work();
            r.close();
            Throwable failure = r.failure;
            r.body = null;
            if (failure instanceof RuntimeException e) {
                throw e;
            }
            if (failure instanceof Error e) {
                throw e;
            }
        } finally {
            LOCK.unlock();
        }
    }

    private static void helperLoop() {
        long seen = 0;
        while (true) {
            long deadline = System.nanoTime() + SPIN_NANOS;
            int spins = 0;
            while (generation == seen) {
                Thread.onSpinWait();
                if (resting || (++spins & 127) == 0 && System.nanoTime() > deadline) {
                    LockSupport.park(Parallel.class);
                }
            }
            seen = generation;
            Region r = REGION;
            if (r.join()) {
                r.work();
                r.leave();
            }
        }
    }

    /** The region in flight: its chunks, a claim counter and who is working on it. */
    private static final class Region {
        private static final int CLOSED = 1 << 30;
        private final AtomicInteger next = new AtomicInteger();
        /** Helpers inside {@link #work}, plus {@link #CLOSED} once the caller stopped admitting them. */
        private final AtomicInteger state = new AtomicInteger(CLOSED);
        volatile RangeBody body;
        volatile Throwable failure;
        private int n;
        private int chunks;
        private int unitsPerChunk;
        private int align;
        /** Helpers this region admits: its thread bound minus the caller. */
        private volatile int maxHelpers;

        void open(RangeBody b, int rows, int rowAlign, int threads) {
            int units = (rows + rowAlign - 1) / rowAlign;
            n = rows;
            align = rowAlign;
            maxHelpers = threads - 1;
            chunks = Math.min(units, threads * CHUNKS_PER_THREAD);
            unitsPerChunk = units / chunks;
            failure = null;
            body = b;
            next.set(0);
            state.set(0);
        }

        boolean join() {
            while (true) {
                int s = state.get();
                if ((s & CLOSED) != 0 || s >= maxHelpers) {
                    return false; // closed, or as many helpers inside as the region's bound admits
                }
                if (state.compareAndSet(s, s + 1)) {
                    return true;
                }
            }
        }

        void leave() {
            state.decrementAndGet();
        }

        /** Stops admitting helpers and waits for those inside to finish their chunk. */
        void close() {
            int s;
            do {
                s = state.get();
            } while (!state.compareAndSet(s, s | CLOSED));
            while (state.get() != CLOSED) {
                Thread.onSpinWait();
            }
        }

        void work() {
            RangeBody b = body;
            int c;
            while ((c = next.getAndIncrement()) < chunks) {
                // Chunk c covers units [c·u + min(c, extra), ...): sizes differ by at most one unit.
                int units = (n + align - 1) / align;
                int extra = units - unitsPerChunk * chunks;
                int from = (c * unitsPerChunk + Math.min(c, extra)) * align;
                int to = Math.min(n, ((c + 1) * unitsPerChunk + Math.min(c + 1, extra)) * align);
                try {
                    b.run(from, to);
                } catch (Throwable t) {
                    if (failure == null) {
                        failure = t;
                    }
                }
            }
        }
    }
}
