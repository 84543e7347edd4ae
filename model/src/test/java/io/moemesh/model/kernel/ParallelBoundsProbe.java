package io.moemesh.model.kernel;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.LockSupport;

/**
 * Run in a child JVM with more kernel threads than this machine may have cores ({@code -Dmoemesh.kernel.threads=4}):
 * for every bound t of {@link Parallel#withThreads}, no region opened inside uses more than t threads, and t threads
 * do join one when each waits for the others. Each bounded region follows an unbounded one, so that every helper is
 * still spinning when it opens, not only the ones it wakes. Prints one line per bound; exits 1 on the first violation.
 */
final class ParallelBoundsProbe {
    private ParallelBoundsProbe() {
    }

    public static void main(String[] args) throws Exception {
        int threads = Parallel.threads();
        for (int bound = 1; bound <= threads + 1; bound++) {
            int allowed = Math.min(bound, threads);
            int most = 0;
            for (int rep = 0; rep < 50; rep++) {
                // An unbounded region first: its helpers then spin for the next region (not only the woken ones).
                Parallel.forRange(100_000, 64, 1L << 20, (from, to) -> LockSupport.parkNanos(20_000));
                Set<Thread> ran = ConcurrentHashMap.newKeySet();
                Parallel.withThreads(bound, () -> Parallel.forRange(100_000, 64, 1L << 20, (from, to) -> {
                    ran.add(Thread.currentThread());
                    LockSupport.parkNanos(100_000); // long enough for every admitted helper to take a chunk
                }));
                most = Math.max(most, ran.size());
            }
            Set<Thread> joined = ConcurrentHashMap.newKeySet();
            Parallel.withThreads(bound, () -> joined.addAll(ParallelTest.threadsOfOneRegion(allowed)));
            System.out.println("bound " + bound + ": at most " + most + " threads per region, " + joined.size()
                    + " joined when waiting for each other");
            if (most > allowed || joined.size() != allowed) {
                System.out.println("VIOLATION: expected at most " + allowed + " and exactly " + allowed + " joined");
                System.exit(1);
            }
        }
    }
}
