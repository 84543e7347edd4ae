package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.metrics.RouterMetrics;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.reports.ReportedToken;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.support.TestRoutes;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the coordinator believes of epochs seen elsewhere (gateways' hints, confirmed by instances), whom a failed
 * attempt counts against (quarantine), and holds that keep it from placing.
 */
class EpochEvidenceTest extends PlacementCoordinatorFixture {
    /**
     * A gateway with a wrong epoch (a bug, or pointed at another mesh) far above what any instance holds: believed,
     * it would lift the next epoch past the jump every instance refuses, for good, and quarantine them all.
     */
    @Test
    void aWatcherFarAboveWhatAnyInstanceHolds_isIgnoredAndCounted_theNextEpochIsCurrentPlusOne_noPodQuarantined() {
        PlacementCoordinator c = coordinator(1, 10);
        c.quarantine().enable();
        c.start().join();
        servedEverywhere(c.current());
        loader.maxEpochJump = 1000;

        c.watch(5001, "gateway gw-elsewhere", p -> { });
        await().atMost(Duration.ofSeconds(10)).until(() -> c.unconfirmedEpochs() == 1);

        assertThat(c.isBehind()).isFalse();
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(2);
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(3);
        assertThat(c.quarantine().size()).isZero();
        assertThat(new EpochStore(stateDir).restoreHighestAttempted()).as("the floor on disk").isEqualTo(3);
    }

    /** Another router placed epoch 57 (an instance holds it prepared): a gateway at 57 is believed. */
    @Test
    void aWatcherAtAnEpochAnInstanceHolds_raisesTheFloor_andTheCoordinatorIsBehind() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        servedEverywhere(c.current());
        held.put("expert-2", new HeldEpochs(1, held.get("expert-2").servedExperts(), 57));

        c.watch(57, "gateway gw-1", p -> { });

        await().atMost(Duration.ofSeconds(10)).until(c::isBehind);
        assertThat(c.unconfirmedEpochs()).isZero();
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(58);
    }

    /** A refusal of the epoch's number (e.g. a jump, a number held) is one any pod would answer alike. */
    @Test
    void prepareRefusalsOfTheEpochNumber_countAgainstNoInstance() {
        PlacementCoordinator c = coordinator(1, 10);
        c.quarantine().enable();
        c.start().join();
        refusing.add("expert-1");
        for (int i = 0; i < 3; i++) {
            assertThatThrownBy(() -> c.replan(null).join()).hasCauseInstanceOf(ReplanAbortedException.class);
        }
        assertThat(c.quarantine().size()).isZero();
    }

    /**
     * A refusal the instance marks as one of the epoch's number counts against no instance whatever its wording (not
     * one the rolling-upgrade message fallback knows).
     */
    @Test
    void prepareRefusalsMarkedAsOfTheEpochNumber_butWordedOtherwise_countAgainstNoInstance() {
        PlacementCoordinator c = coordinator(1, 10);
        c.quarantine().enable();
        c.start().join();
        loader.refusingMarked.add("expert-1");
        for (int i = 0; i < 3; i++) {
            assertThatThrownBy(() -> c.replan(null).join()).hasCauseInstanceOf(ReplanAbortedException.class);
        }
        assertThat(c.quarantine().size()).isZero();
    }

    /**
     * A pod answering that the assignment is for another instance refuses with FAILED_PRECONDITION too, but that says
     * something of the pod, not of the epoch: every attempt would fail on it, so it counts and the pod is quarantined.
     */
    @Test
    void aPrepareRefusedAsForAnotherInstance_countsAgainstThatInstance_andQuarantinesIt() {
        PlacementCoordinator c = coordinator(1, 10);
        c.quarantine().enable();
        c.start().join();
        loader.otherInstance.add("expert-1");
        for (int i = 0; i < 2; i++) {
            assertThatThrownBy(() -> c.replan(null).join()).hasCauseInstanceOf(ReplanAbortedException.class);
        }
        assertThat(c.quarantine().quarantined()).singleElement()
                .satisfies(q -> assertThat(q.instanceId()).isEqualTo("expert-1"))
                .satisfies(q -> assertThat(q.lastError()).contains("assignment is for instance"));
    }

    /** More than half the set failing one attempt (a big re-plan slowing every load) is the attempt's fault. */
    @Test
    void anAttemptFailedByMoreThanHalfTheSet_countsAgainstNone_butOneFailingAloneIsQuarantined() {
        PlacementCoordinator c = coordinator(1, 10);
        c.quarantine().enable();
        c.start().join();
        failing.addAll(List.of("expert-0", "expert-1"));
        for (int i = 0; i < 3; i++) {
            assertThatThrownBy(() -> c.replan(null).join()).hasCauseInstanceOf(ReplanAbortedException.class);
        }
        assertThat(c.quarantine().size()).isZero();

        failing.remove("expert-0");
        for (int i = 0; i < 2; i++) {
            assertThatThrownBy(() -> c.replan(null).join()).hasCauseInstanceOf(ReplanAbortedException.class);
        }
        assertThat(c.quarantine().quarantined()).extracting(Quarantine.Quarantined::instanceId)
                .containsExactly("expert-1");
    }

    /**
     * The lease lost while the epoch was being prepared: it is not published, and every instance is told to ABORT
     * it (the next holder's PREPARE at that number would be refused otherwise), with no strike against any of them.
     */
    @Test
    void aHoldThatBeginsWhilePreparing_abortsTheEpochEverywhere_publishesNothing_andStrikesNoInstance() {
        PlacementCoordinator c = coordinator(1, 10);
        c.quarantine().enable();
        c.start().join();
        events.clear();
        loader.gate = new CountDownLatch(1);
        var replan = c.replan(null);
        await().atMost(Duration.ofSeconds(10)).until(() -> loader.waiting.get() == 3);
        EpochFloor.Hold lease = c.floor().hold("another router holds the lease");
        loader.gate.countDown();

        assertThatThrownBy(replan::join).cause().isInstanceOf(ReplanAbortedException.class)
                .hasMessageContaining("placement epoch 2 was not published")
                .hasMessageContaining("another router holds the lease");
        assertThat(events).containsAll(each("abort", 2, "expert-0", "expert-1", "expert-2"))
                .doesNotContain("published 2");
        assertThat(c.currentEpoch()).isEqualTo(1);
        assertThat(c.quarantine().size()).isZero();
        // Held again later: the number was never published, and is used again.
        c.floor().release(lease);
        await().atMost(Duration.ofSeconds(10)).until(() -> !c.floor().held());
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(2);
    }

    /** Two reads of the ConfigMap overlap (the same reason): the older one ending must not lift the newer one's hold. */
    @Test
    void twoHoldsOfTheSameReason_releasingTheOlder_keepsTheNewerOn() {
        PlacementCoordinator c = coordinator(1, 10);
        EpochFloor.Hold older = c.floor().hold("the ConfigMap not read yet");
        EpochFloor.Hold newer = c.floor().hold("the ConfigMap not read yet");

        c.floor().release(older);
        c.retryMissedCommits().join(); // queued on the replan thread after the release: it has run

        assertThat(c.floor().held()).isTrue();
        assertThatThrownBy(c::start).isInstanceOf(IllegalStateException.class)
                .hasMessage("placement is on hold: the ConfigMap not read yet");
        c.floor().release(newer);
        c.retryMissedCommits().join();
        assertThat(c.floor().held()).isFalse();
    }
}
