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

/**
 * Following the discovered instance set: settle time, one switch at a time, retries, an empty set, instances that
 * keep failing, epochs seen elsewhere, a stop and a start.
 */
class InstanceSetFollowerTest {
    static final Instance A = Instance.newBuilder().setId("expert-0").setEndpoint("127.0.0.1:1").build();
    static final Instance B = Instance.newBuilder().setId("expert-1").setEndpoint("127.0.0.1:2").build();
    static final Instance C = Instance.newBuilder().setId("expert-2").setEndpoint("127.0.0.1:3").build();
    static final Instance D = Instance.newBuilder().setId("expert-3").setEndpoint("127.0.0.1:4").build();

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
        return follower(settle, true);
    }

    /** @param leaveOutFailing as the router's with discovered pods (true) or configured instances (false) */
    InstanceSetFollower follower(Duration settle, boolean leaveOutFailing) {
        var settings = new PlacementCoordinator.Settings(List.of(), TestRoutes.SHAPE, false, 2,
                PlacementBudget.slots(1, 8), "affinity", 10, Duration.ofSeconds(30));
        coordinator = new PlacementCoordinator(settings, TestRoutes.book(1000), loader, new EpochStore(stateDir),
                Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(2), System::nanoTime);
        follower = new InstanceSetFollower(coordinator, n -> PlacementBudget.slots(n, 8), 2, settle,
                Duration.ofMillis(100), Executors::newSingleThreadScheduledExecutor, failures::incrementAndGet,
                leaveOutFailing);
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
        follower(Duration.ZERO, false);
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

    /**
     * A Ready pod that can never load its share (a broken GPU) must not keep the router from re-placing the experts of
     * a pod that died: after failing twice in a row it is left out, and the switch goes on with the others.
     */
    @Test
    void anInstanceThatKeepsFailingPrepare_isLeftOut_soADeadInstanceIsStillReplaced() {
        follower(Duration.ZERO);
        failing.add("expert-3");
        follower.offer(List.of(A, B, C, D));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() > 0);
        assertThat(coordinator.current().getInstancesList()).containsExactly(A, B, C);
        assertThat(coordinator.quarantine().quarantined()).singleElement()
                .satisfies(q -> assertThat(q.instanceId()).isEqualTo("expert-3"))
                .satisfies(q -> assertThat(q.lastError()).contains("UNAVAILABLE"));
        long first = coordinator.currentEpoch();
        // expert-1 dies; expert-3 is still Ready and still cannot load anything.
        follower.offer(List.of(A, C, D));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() > first);
        assertThat(coordinator.current().getInstancesList()).containsExactly(A, C);
        assertThat(coordinator.current().getLayersList()).allSatisfy(l -> assertThat(l.getExpertsList())
                .allSatisfy(e -> assertThat(e.getInstanceIdsList()).containsExactlyInAnyOrder("expert-0", "expert-2")));
    }

    /**
     * With two pods one that always fails its PREPARE is half the set: it still counts against it (exempting it would
     * fail every switch for good), so it is quarantined and an epoch on the other one is published.
     */
    @Test
    void oneOfTwoInstancesAlwaysFailingPrepare_isQuarantined_andAnEpochOnTheOtherIsPublished() {
        follower(Duration.ZERO);
        failing.add("expert-3");
        follower.offer(List.of(A, D));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() > 0);
        assertThat(coordinator.current().getInstancesList()).containsExactly(A);
        assertThat(coordinator.quarantine().quarantined()).singleElement()
                .satisfies(q -> assertThat(q.instanceId()).isEqualTo("expert-3"));
    }

    /**
     * A gateway that holds an epoch above the router's (a router before this one published it, and this one lost its
     * state) ignores the router's epochs: seeing it, the router publishes again, above it, on the same instances.
     */
    @Test
    void anEpochSeenElsewhereAboveTheCurrentOne_isPlacedOnAgain_aboveIt() {
        follower(Duration.ZERO);
        follower.offer(List.of(A, B));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 1);
        List<Long> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        coordinator.watch(57, "gateway gw-test", p -> seen.add(p.getEpoch()));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 58);
        assertThat(seen).containsExactly(58L);
        assertThat(coordinator.current().getInstancesList()).containsExactly(A, B);
        assertThat(coordinator.isBehind()).isFalse();
    }

    /** A Spring context stopped and started again: the follower's timer was shut down, and a new one follows. */
    @Test
    void aStartAfterAClose_followsTheSetAgain() {
        follower(Duration.ZERO);
        follower.offer(List.of(A));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 1);
        follower.close();
        follower.start();
        follower.offer(List.of(A, B));
        await().atMost(Duration.ofSeconds(10)).until(() -> coordinator.currentEpoch() == 2);
        assertThat(coordinator.current().getInstancesList()).containsExactly(A, B);
    }
}
