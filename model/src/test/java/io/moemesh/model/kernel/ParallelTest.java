package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ParallelTest {

    @ParameterizedTest(name = "n={0} align={1}")
    @CsvSource({"1, 1", "7, 4", "64, 4", "1000, 4", "1001, 16", "3, 1", "100000, 64"})
    void forRange_coversEveryRowOnce_inAlignedChunks(int n, int align) {
        AtomicIntegerArray hits = new AtomicIntegerArray(n);
        Parallel.forRange(n, align, 1L << 20, (from, to) -> {
            assertThat(from % align).isZero();
            assertThat(to == n || to % align == 0).isTrue();
            for (int i = from; i < to; i++) {
                hits.incrementAndGet(i);
            }
        });
        for (int i = 0; i < n; i++) {
            assertThat(hits.get(i)).as("row %d", i).isEqualTo(1);
        }
    }

    @Test
    void forRange_rethrowsTheBodysFailure_andStaysUsable() {
        assertThatThrownBy(() -> Parallel.forRange(1000, 4, 1L << 20, (from, to) -> {
            if (to == 1000) {
                throw new IllegalStateException("boom");
            }
        })).isInstanceOf(IllegalStateException.class).hasMessage("boom");
        AtomicIntegerArray hits = new AtomicIntegerArray(1);
        Parallel.forRange(1000, 4, 1L << 20, (from, to) -> hits.addAndGet(0, to - from));
        assertThat(hits.get(0)).isEqualTo(1000);
    }

    @Test
    void nestedForRange_runsInline_withoutDeadlock() {
        AtomicIntegerArray hits = new AtomicIntegerArray(1);
        Parallel.forRange(64, 4, 1L << 20, (from, to) ->
                Parallel.forRange(100, 4, 1L << 20, (a, b) -> hits.addAndGet(0, (to - from) * (b - a))));
        assertThat(hits.get(0)).isEqualTo(64 * 100);
    }

    @Test
    void concurrentCallers_eachGetTheirWholeRangeDone() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            CountDownLatch start = new CountDownLatch(1);
            Future<?>[] fs = new Future<?>[4];
            AtomicIntegerArray sums = new AtomicIntegerArray(4);
            for (int c = 0; c < 4; c++) {
                int caller = c;
                fs[c] = pool.submit(() -> {
                    start.await();
                    for (int rep = 0; rep < 200; rep++) {
                        Parallel.forRange(512, 4, 1L << 20, (from, to) -> sums.addAndGet(caller, to - from));
                    }
                    return null;
                });
            }
            start.countDown();
            for (Future<?> f : fs) {
                f.get();
            }
            for (int c = 0; c < 4; c++) {
                assertThat(sums.get(c)).isEqualTo(200 * 512);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void withOneThread_runsEveryRegionOnTheCallingThread_andOthersStillSplit() throws Exception {
        Set<Thread> inside = ConcurrentHashMap.newKeySet();
        Thread[] caller = new Thread[1];
        Thread t = new Thread(() -> {
            caller[0] = Thread.currentThread();
            Parallel.withThreads(1, () -> Parallel.forRange(100_000, 64, 1L << 20, (from, to) ->
                    inside.add(Thread.currentThread())));
        });
        t.start();
        t.join();
        assertThat(inside).containsExactly(caller[0]);
        // afterwards (and on every other thread) regions are split again when there is more than one core
        assertThat(threadsOfOneRegion()).hasSize(Math.min(2, Parallel.threads()));
    }

    /** Regions inside {@code withThreads(t)} use at most t threads; a bound above the helpers changes nothing. */
    @ParameterizedTest(name = "bound={0}")
    @CsvSource({"1", "2", "3", "64"})
    void withThreads_boundsEveryRegionOpenedInside_onEveryCaller(int bound) throws Exception {
        int expected = Math.min(bound, Parallel.threads());
        for (int rep = 0; rep < 20; rep++) {
            Set<Thread> ran = ConcurrentHashMap.newKeySet();
            Parallel.withThreads(bound, () -> Parallel.forRange(100_000, 64, 1L << 20, (from, to) -> {
                ran.add(Thread.currentThread());
                LockSupport.parkNanos(200_000); // long enough for every admitted helper to take a chunk
            }));
            assertThat(ran.size()).as("threads of one region").isBetween(1, expected);
        }
        Set<Thread> bounded = ConcurrentHashMap.newKeySet();
        Parallel.withThreads(bound, () -> bounded.addAll(threadsOfOneRegion(expected)));
        assertThat(bounded).hasSize(expected);
    }

    /**
     * This machine may have 2 cores, where bounds of 2 and more cannot differ: a child JVM with 4 kernel threads checks
     * every bound from 1 to 5 (at most that many threads per region, and that many join one).
     */
    @Test
    void withThreads_inAJvmWithFourKernelThreads_boundsEveryRegion() throws Exception {
        List<String> cmd = List.of(java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "-Dmoemesh.kernel.threads=4",
                "-cp", System.getProperty("java.class.path"), ParallelBoundsProbe.class.getName());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).as(out).isTrue();
        assertThat(p.exitValue()).as(out).isZero();
        assertThat(out).contains("bound 1: at most 1 threads per region, 1 joined")
                .contains("bound 3: at most").contains("3 joined when waiting")
                .contains("bound 5: at most").contains("4 joined when waiting");
    }

    @ParameterizedTest(name = "threads={0}")
    @CsvSource({"0", "-1"})
    void withThreads_refusesABoundBelowOne(int threads) {
        assertThatThrownBy(() -> Parallel.withThreads(threads, () -> { }))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at least 1 thread, got " + threads);
    }

    /** Runs one region in which each thread stays busy until a second one joined; the threads that ran it. */
    private static Set<Thread> threadsOfOneRegion() {
        return threadsOfOneRegion(Math.min(2, Parallel.threads()));
    }

    /**
     * Runs one region in which each thread stays busy until {@code threads} joined (at most 20 s); the threads that
     * ran it. Also used by {@link ParallelBoundsProbe} in its child JVM.
     */
    static Set<Thread> threadsOfOneRegion(int threads) {
        Set<Thread> ran = ConcurrentHashMap.newKeySet();
        CountDownLatch both = new CountDownLatch(threads);
        Parallel.forRange(100_000, 64, 1L << 20, (from, to) -> {
            if (ran.add(Thread.currentThread())) {
                both.countDown();
                try {
                    both.await(20, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
        return ran;
    }

    /**
     * The gateway's hint before it waits for an expert hop: it holds until the next region opens, the helpers are
     * parked meanwhile, and that region still splits across them (they are unparked as always).
     */
    @Test
    void parkHelpers_holdsUntilTheNextRegion_whichStillUsesTheHelpers() throws Exception {
        Parallel.forRange(100_000, 64, 1L << 20, (from, to) -> { });
        Parallel.parkHelpers();
        assertThat(Parallel.resting()).isEqualTo(Parallel.threads() > 1);
        List<Thread> helpers = Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("moemesh-kernel-")).toList();
        assertThat(helpers).hasSize(Parallel.threads() - 1);
        await().atMost(Duration.ofSeconds(10)).until(() -> helpers.stream()
                .allMatch(t -> t.getState() == Thread.State.WAITING && LockSupport.getBlocker(t) == Parallel.class));
        assertThat(threadsOfOneRegion()).hasSize(Math.min(2, Parallel.threads()));
        assertThat(Parallel.resting()).isFalse();
    }
}
