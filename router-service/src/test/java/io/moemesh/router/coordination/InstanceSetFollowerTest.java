package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.support.TestRoutes;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Following the discovered instance set: settle time, one switch at a time, retries, an empty set. */
class InstanceSetFollowerTest {
    static final Instance A = Instance.newBuilder().setId("expert-0").setEndpoint("127.0.0.1:1").build();
    static final Instance B = Instance.newBuilder().setId("expert-1").setEndpoint("127.0.0.1:2").build();

    @TempDir
    Path stateDir;
    volatile CountDownLatch gate = new CountDownLatch(0);
    final Set<String> failing = ConcurrentHashMap.newKeySet();
    final Set<String> prepared = ConcurrentHashMap.newKeySet();
    /** Instances whose next COMMIT fails (once each). */
    final Set<String> missCommitOnce = ConcurrentHashMap.newKeySet();
    final AtomicInteger failures = new AtomicInteger();
    PlacementCoordinator coordinator;
    InstanceSetFollower follower;

    /** PREPAREs wait for the gate and fail on the failing instances; the rest succeed. */
    final InstanceLoader loader = new InstanceLoader() {
        @Override
        public void prepare(Instance in, long epoch, List<AssignedExpert> experts, Duration timeout) {
            try {
                gate.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
            if (failing.contains(in.getId())) {
                throw new IllegalStateException("UNAVAILABLE");
            }
            prepared.add(epoch + " " + in.getId());
        }

        @Override
        public void commit(Instance in, long epoch, Duration timeout) {
            if (missCommitOnce.remove(in.getId())) {
                throw new IllegalStateException("DEADLINE_EXCEEDED");
            }
        }

        @Override
        public void abort(Instance in, long epoch, Duration timeout) {
        }

        @Override
        public HeldEpochs held(Instance in, Duration timeout) {
            return HeldEpochs.NONE;
        }
    };

    InstanceSetFollower follower(Duration settle) {
        var settings = new PlacementCoordinator.Settings(List.of(), TestRoutes.SHAPE, false, 2,
                PlacementBudget.slots(1, 8), "affinity", 10, Duration.ofSeconds(30));
        coordinator = new PlacementCoordinator(settings, TestRoutes.book(1000), loader, new EpochStore(stateDir),
                Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(2), System::nanoTime);
        follower = new InstanceSetFollower(coordinator, n -> PlacementBudget.slots(n, 8), 2, settle,
                Duration.ofMillis(100), Executors.newSingleThreadScheduledExecutor(), failures::incrementAndGet);
        return follower;
    }

    @AfterEach
    void close() {
        gate.countDown();
        if (follower != null) {
            follower.close();
            coordinator.close();
        }
    }

    @Test
    void setsWithinTheSettleTime_makeOneEpoch_overTheLastSet_withReplicasCappedByTheInstances() {
        follower(Duration.ofMillis(500));
        follower.offer(List.of(A));
        follower.offer(List.of(A, B));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 1);
        assertThat(coordinator.current().getInstancesList()).containsExactly(A, B);
        assertThat(follower.switches()).isEqualTo(1);
        follower.offer(List.of(B));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 2);
        // One instance: every expert once (replicas 2 capped at 1).
        assertThat(coordinator.current().getLayers(0).getExpertsList())
                .allSatisfy(e -> assertThat(e.getInstanceIdsList()).containsExactly("expert-1"));
        assertThat(prepared).doesNotContain("2 expert-0");
    }

    @Test
    void aChangeDuringASwitch_isPlacedAfterIt() {
        follower(Duration.ZERO);
        gate = new CountDownLatch(1);
        follower.offer(List.of(A));
        await().atMost(Duration.ofSeconds(10)).until(coordinator::replanRunning);
        follower.offer(List.of(A, B));
        await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(5))
                .until(() -> coordinator.currentEpoch() == 0 && follower.switches() == 1);
        gate.countDown();
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 2);
        assertThat(coordinator.current().getInstancesList()).containsExactly(A, B);
    }

    @Test
    void aFailedSwitch_isRetried_untilTheInstancesLoadIt_keepingItsEpochNumber() {
        follower(Duration.ZERO);
        failing.add("expert-1");
        follower.offer(List.of(A, B));
        await().atMost(Duration.ofSeconds(10)).until(() -> failures.get() >= 2);
        assertThat(coordinator.current()).isNull();
        failing.clear();
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 1);
        assertThat(follower.switches()).isGreaterThanOrEqualTo(3);
    }

    @Test
    void aMissedCommit_isRetriedOnTheRetryPause_andReportedCommitted_withoutANewEpoch() {
        follower(Duration.ZERO);
        List<List<String>> committed = new java.util.concurrent.CopyOnWriteArrayList<>();
        coordinator.onCommitted((p, ids, restarts) -> committed.add(List.copyOf(ids)));
        missCommitOnce.add("expert-1");
        follower.offer(List.of(A, B));
        await().atMost(Duration.ofSeconds(10)).until(() -> !committed.isEmpty());
        assertThat(committed.getFirst()).containsExactly("expert-0");
        // No replan comes (the set stays the same): the retry pause alone commits it and reports it.
        await().atMost(Duration.ofSeconds(10)).until(() -> committed.getLast().contains("expert-1"));
        assertThat(committed.getLast()).containsExactlyInAnyOrder("expert-0", "expert-1");
        assertThat(coordinator.currentEpoch()).isEqualTo(1);
        assertThat(coordinator.pendingCommits()).isZero();
        assertThat(coordinator.commitFailures()).isEqualTo(1);
    }

    @Test
    void aContainerRestartAtTheSameEndpoint_isPlacedOnAgain_likeANewInstance() {
        follower(Duration.ZERO);
        follower.offer(List.of(A, B), java.util.Map.of("expert-0", 0, "expert-1", 0));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 1);
        // Same instances, same endpoints: expert-1's container restarted and holds nothing.
        follower.offer(List.of(A, B), java.util.Map.of("expert-0", 0, "expert-1", 1));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 2);
        assertThat(prepared).contains("2 expert-1");
        assertThat(coordinator.restarts()).containsEntry("expert-1", 1);
        assertThat(follower.switches()).isEqualTo(2);
    }

    @Test
    void anEmptySet_publishesNothing() {
        follower(Duration.ZERO);
        follower.offer(List.of());
        await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(5)).until(() -> coordinator.current() == null);
        assertThat(follower.switches()).isZero();
        follower.offer(List.of(A));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 1);
        follower.offer(List.of());
        await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(5)).until(() -> coordinator.currentEpoch() == 1);
    }
}
