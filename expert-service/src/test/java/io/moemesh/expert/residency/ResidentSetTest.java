package io.moemesh.expert.residency;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.expert.backend.LoadedExpert;
import io.moemesh.model.engine.ExpertKey;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

class ResidentSetTest {
    private record Fake(ExpertKey key, long byteSize) implements LoadedExpert {
    }

    private final AtomicInteger loads = new AtomicInteger();
    /** Expert e of any layer weighs 100 bytes, except expert 9 which weighs 1000. */
    private final Function<ExpertKey, LoadedExpert> loader = k -> {
        loads.incrementAndGet();
        return new Fake(k, k.expert() == 9 ? 1000 : 100);
    };

    private static ExpertKey k(int e) {
        return new ExpertKey(0, e);
    }

    @Test
    void overBudget_evictsLeastRecentlyUsed_byBytes() {
        ResidentSet set = new ResidentSet(300, loader);
        set.acquire(k(1));
        set.acquire(k(2));
        set.acquire(k(3));
        set.acquire(k(1)); // 2 is now the least recently used
        set.acquire(k(4));
        assertThat(set.residentExperts()).containsExactly(k(1), k(3), k(4));
        assertThat(set.residentBytes()).isEqualTo(300);
    }

    @Test
    void hitsAndMisses_areCounted_andAnEvictedExpertIsReloadedOnDemand() {
        ResidentSet set = new ResidentSet(200, loader);
        set.acquire(k(1));
        set.acquire(k(1));
        set.acquire(k(2));
        set.acquire(k(3)); // evicts 1
        set.acquire(k(1)); // miss: reloaded
        assertThat(set.hits()).isEqualTo(1);
        assertThat(set.misses()).isEqualTo(4);
        assertThat(loads).hasValue(4);
        assertThat(set.isResident(k(1))).isTrue();
    }

    @Test
    void prefetchedExpert_usedBeforeEviction_isAPrefetchHit_once_andNoCriticalPathMiss() {
        ResidentSet set = new ResidentSet(300, loader);
        set.prefetch(k(1));
        set.acquire(k(1));
        set.acquire(k(1));
        assertThat(set.prefetchLoads()).isEqualTo(1);
        assertThat(set.prefetchHits()).as("counted at the first use only").isEqualTo(1);
        assertThat(set.misses()).isZero();
        assertThat(set.hits()).isEqualTo(2);
    }

    @Test
    void prefetchedExpert_evictedUnused_isWasted_andItsLaterUseIsACriticalPathMiss() {
        ResidentSet set = new ResidentSet(200, loader);
        set.prefetch(k(1));
        set.acquire(k(2));
        set.acquire(k(3)); // evicts 1, never used
        set.acquire(k(1));
        assertThat(set.prefetchWasted()).isEqualTo(1);
        assertThat(set.prefetchHits()).isZero();
        assertThat(set.misses()).isEqualTo(3);
    }

    /**
     * A batch that misses while a prefetch of its expert is loading joins that load (and waits: a miss); the
     * prefetch keeps the expert and the batch then uses it, so the prefetch was used: a hit, not wasted when the
     * expert is evicted later. The loader holds the prefetch until the batch is parked in the join.
     */
    @Test
    void prefetchWhoseLoadABatchJoined_isAPrefetchHit_andNotWastedWhenEvicted() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger started = new AtomicInteger();
        ResidentSet set = new ResidentSet(200, key -> {
            if (key.equals(k(1))) {
                started.incrementAndGet();
                try {
                    release.await(10, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            return new Fake(key, 100);
        });
        CompletableFuture<Boolean> prefetched = new CompletableFuture<>();
        daemon(() -> prefetched.complete(set.prefetch(k(1)))).start();
        await().until(() -> started.get() == 1);
        CompletableFuture<Throwable> batch = new CompletableFuture<>();
        Thread batchThread = daemon(() -> batch.complete(failureOf(set, k(1))));
        batchThread.start();
        // WAITING only once it is parked in the join() on the prefetch's load (a lock wait would be BLOCKED).
        await().until(() -> batchThread.getState() == Thread.State.WAITING);
        release.countDown();
        assertThat(prefetched.get(10, TimeUnit.SECONDS)).isTrue();
        assertThat(batch.get(10, TimeUnit.SECONDS)).isNull();

        set.acquire(k(2));
        set.acquire(k(3)); // evicts 1, which the batch used
        assertThat(set.isResident(k(1))).isFalse();
        assertThat(started).as("one load, shared").hasValue(1);
        assertThat(set.prefetchLoads()).isEqualTo(1);
        assertThat(set.prefetchHits()).isEqualTo(1);
        assertThat(set.prefetchWasted()).isZero();
        assertThat(set.misses()).as("the batch waited for the load, then 2 and 3").isEqualTo(3);
    }

    @Test
    void prefetchOfAResidentExpert_loadsNothing_andCountsNoPrefetch() {
        ResidentSet set = new ResidentSet(300, loader);
        set.acquire(k(1));
        assertThat(set.prefetch(k(1))).isTrue();
        set.acquire(k(1));
        assertThat(set.prefetchLoads()).isZero();
        assertThat(set.prefetchHits()).isZero();
        assertThat(loads).hasValue(1);
    }

    @Test
    void prefetchForLayerP_evictsFurthestNextUseFirst_thenLayerPMinusOne_thenLayerP() {
        // 4 layers, room for 3 experts: resident are layer 3, layer 0 and layer 1 (just hinted for: its batch may
        // be arriving). A prefetch for layer 2 evicts layer 0 (next use 2 layers on) before layer 3 (1 on), though
        // layer 3 is the least recently used.
        ResidentSet set = new ResidentSet(300, loader, 4);
        set.acquire(new ExpertKey(3, 1));
        set.acquire(new ExpertKey(0, 1));
        set.acquire(new ExpertKey(1, 1));
        set.prefetch(new ExpertKey(2, 1));
        assertThat(set.residentExperts()).containsExactly(new ExpertKey(1, 1), new ExpertKey(2, 1), new ExpertKey(3, 1));
        // Then layer 3, then layer 1 (p - 1), and layer 2's own experts last.
        set.prefetch(new ExpertKey(2, 2));
        assertThat(set.residentExperts()).containsExactly(new ExpertKey(1, 1), new ExpertKey(2, 1), new ExpertKey(2, 2));
        set.prefetch(new ExpertKey(2, 3));
        assertThat(set.residentExperts()).containsExactly(new ExpertKey(2, 1), new ExpertKey(2, 2), new ExpertKey(2, 3));
        set.prefetch(new ExpertKey(2, 4));
        assertThat(set.residentExperts()).containsExactly(new ExpertKey(2, 2), new ExpertKey(2, 3), new ExpertKey(2, 4));
        assertThat(set.prefetchLoads()).isEqualTo(4);
        assertThat(set.prefetchWasted()).isEqualTo(1);
    }

    @Test
    void prefetchedExpert_droppedByRestriction_isWasted() {
        ResidentSet set = new ResidentSet(300, loader);
        set.prefetch(k(1));
        set.restrictTo(key -> key.expert() != 1);
        assertThat(set.prefetchWasted()).isEqualTo(1);
        assertThat(set.isResident(k(1))).isFalse();
    }

    @Test
    void expertBiggerThanBudget_isServedButNeverKept() {
        ResidentSet set = new ResidentSet(300, loader);
        set.acquire(k(1));
        assertThat(set.acquire(k(9)).byteSize()).isEqualTo(1000);
        assertThat(set.residentExperts()).containsExactly(k(1));
        assertThat(set.residentBytes()).isLessThanOrEqualTo(set.budgetBytes());
    }

    @Test
    void preload_fillsTheBudgetInOrder_withoutEvictingItsOwnExperts() {
        ResidentSet set = new ResidentSet(300, loader);
        set.acquire(k(7)); // an old expert, evictable
        int kept = set.preload(List.of(k(1), k(2), k(3), k(4), k(5)));
        assertThat(kept).isEqualTo(3);
        assertThat(set.residentExperts()).containsExactly(k(1), k(2), k(3));
    }

    @Test
    void restrictTo_dropsOthersNow_andRefusesThemLater() {
        ResidentSet set = new ResidentSet(1000, loader);
        set.preload(List.of(k(1), k(2), k(3)));
        set.restrictTo(key -> key.expert() != 2);
        assertThat(set.residentExperts()).containsExactly(k(1), k(3));
        assertThat(set.residentBytes()).isEqualTo(200);
        assertThat(set.prefetch(k(2))).isFalse();
        assertThat(set.isResident(k(2))).isFalse();
    }

    @Test
    void concurrentMissesOfOneExpert_loadItOnce() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger started = new AtomicInteger();
        ResidentSet set = new ResidentSet(1000, key -> {
            started.incrementAndGet();
            try {
                release.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return new Fake(key, 100);
        });
        try (ExecutorService pool = Executors.newFixedThreadPool(2)) {
            Future<LoadedExpert> a = pool.submit(() -> set.acquire(k(1)));
            await().until(() -> started.get() == 1);
            Future<LoadedExpert> b = pool.submit(() -> set.acquire(k(1)));
            await().until(() -> set.misses() == 2);
            release.countDown();
            assertThat(a.get()).isSameAs(b.get());
            assertThat(started).hasValue(1);
        }
    }

    @Test
    void loaderThrowingAnError_failsTheThreadsWaitingForTheSameLoad_insteadOfHangingThem() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger started = new AtomicInteger();
        ResidentSet set = new ResidentSet(1000, key -> {
            started.incrementAndGet();
            try {
                release.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            throw new InternalError("truncated expert file");
        });
        CompletableFuture<Throwable> a = acquireOnDaemon(set, k(1));
        await().until(() -> started.get() == 1);
        CompletableFuture<Throwable> b = new CompletableFuture<>();
        Thread waiter = daemon(() -> b.complete(failureOf(set, k(1))));
        waiter.start();
        // WAITING only once it is parked in the join() on A's load (a lock wait would be BLOCKED).
        await().until(() -> waiter.getState() == Thread.State.WAITING);
        release.countDown();
        assertThat(a.get(10, TimeUnit.SECONDS)).isInstanceOf(InternalError.class);
        assertThat(b.get(10, TimeUnit.SECONDS)).as("the waiter is answered, not left in join()")
                .isInstanceOf(InternalError.class);
        assertThat(started).as("one load, shared").hasValue(1);
        assertThat(set.isResident(k(1))).isFalse();
    }

    private static CompletableFuture<Throwable> acquireOnDaemon(ResidentSet set, ExpertKey key) {
        CompletableFuture<Throwable> outcome = new CompletableFuture<>();
        daemon(() -> outcome.complete(failureOf(set, key))).start();
        return outcome;
    }

    /** What acquire threw, or null; a daemon thread so that a hung acquire cannot keep the test JVM alive. */
    private static Throwable failureOf(ResidentSet set, ExpertKey key) {
        try {
            set.acquire(key);
            return null;
        } catch (Throwable t) {
            return t;
        }
    }

    private static Thread daemon(Runnable r) {
        Thread t = new Thread(r, "resident-set-test");
        t.setDaemon(true);
        return t;
    }
}
