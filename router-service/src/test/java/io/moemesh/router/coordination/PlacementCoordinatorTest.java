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

/** Starting, re-planning, restarting and switching instance sets: the two-phase switch and what it publishes. */
class PlacementCoordinatorTest extends PlacementCoordinatorFixture {
    @Test
    void start_loadsTheEvenDealWithExactlyReplicasCopies_ontoEveryInstance_thenPublishesEpoch1() {
        PlacementCoordinator c = coordinator(2, 10);
        ReplanOutcome o = c.start().join();
        assertThat(o.placement().getEpoch()).isEqualTo(1);
        assertThat(o.planner()).isEqualTo(PlacementCoordinator.EVEN);
        assertThat(o.placement().getLayersList()).allSatisfy(l -> assertThat(l.getExpertsList())
                .allSatisfy(e -> assertThat(e.getInstanceIdsCount()).isEqualTo(2)));
        assertThat(loaded.get(1L)).containsOnlyKeys("expert-0", "expert-1", "expert-2");
        assertThat(PlacementFiles.read(stateDir.resolve("placement.json"))).isEqualTo(o.placement());
        assertThat(c.currentEpoch()).isEqualTo(1);
        assertThat(events.subList(3, events.size())).startsWith("published 1")
                .containsAll(each("commit", 1, "expert-0", "expert-1", "expert-2"));
    }

    @Test
    void start_withoutTheEpochFile_goesAboveTheHighestEpochAnInstanceHolds() {
        held.put("expert-1", new HeldEpochs(41, List.of(), 0));
        held.put("expert-2", new HeldEpochs(39, List.of(), 40));
        PlacementCoordinator c = coordinator(1, 10);
        assertThat(c.start().join().placement().getEpoch()).isEqualTo(42);
        assertThat(loaded).containsOnlyKeys(42L);
    }

    @Test
    void start_onInstancesServingTheEvenDealAtEpoch1_alreadyLoadedFromThePlacementFile_publishesEpoch1() {
        // moemesh up: the instances loaded epoch 1 from the placement file before the router started
        var deal = EvenPlacement.build(1, INSTANCES, book.shape().layers(), book.shape().experts(), false, 1);
        for (Instance in : INSTANCES) {
            held.put(in.getId(), new HeldEpochs(1, PlacementMessages.assignment(deal, in.getId()), 0));
        }
        PlacementCoordinator c = coordinator(1, 10);
        // A gateway started from the same file watches at its epoch: that epoch, as it is, is published.
        c.watch(1, "gateway gw-test", p -> { });
        assertThat(c.start().join().placement().getEpoch()).isEqualTo(1);
    }

    @Test
    void start_onAnInstanceServingEpoch1WithOtherExperts_goesToEpoch2() {
        held.put("expert-0", new HeldEpochs(1, List.of(new AssignedExpert(0, 0)), 0));
        PlacementCoordinator c = coordinator(1, 10);
        assertThat(c.start().join().placement().getEpoch()).isEqualTo(2);
    }

    @Test
    void raiseEpochFloor_putsTheFirstEpochAboveIt_aLowerOneChangesNothing_andANegativeOneIsRefused() {
        PlacementCoordinator c = coordinator(1, 10);
        c.raiseEpochFloor(9);
        c.raiseEpochFloor(3);
        assertThat(c.start().join().placement().getEpoch()).isEqualTo(10);
        assertThatThrownBy(() -> c.raiseEpochFloor(-1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("epoch must be >= 0");
    }

    /** A gateway watching at epoch 57 (published by a router before this one, which lost its state) ignores 1. */
    @Test
    void watch_atAKnownEpoch_raisesTheFloor_soStartPublishesAboveIt() {
        PlacementCoordinator c = coordinator(1, 10);
        List<Long> seen = new CopyOnWriteArrayList<>();
        c.watch(57, "gateway gw-test", p -> seen.add(p.getEpoch()));
        assertThat(c.start().join().placement().getEpoch()).isEqualTo(58);
        assertThat(seen).containsExactly(58L);
    }

    @Test
    void restart_whenAnEpochAboveTheRestoredOneWasSeenElsewhere_dealsAboveIt_insteadOfRestoring() {
        PlacementCoordinator first = coordinator(1, 10);
        first.start().join();
        first.close();
        PlacementCoordinator second = coordinator(1, 10);
        second.floor().raise(57, "a test's ConfigMap");
        ReplanOutcome o = second.start().join();
        assertThat(o.planner()).isEqualTo(PlacementCoordinator.EVEN);
        assertThat(o.placement().getEpoch()).isEqualTo(58);
    }

    @Test
    void aHold_keepsStartSwitchAndReplanFromBeginning_untilReleased() {
        PlacementCoordinator c = coordinator(1, 10);
        EpochFloor.Hold read = c.floor().hold("the ConfigMap not read yet");
        assertThatThrownBy(c::start).isInstanceOf(IllegalStateException.class)
                .hasMessage("placement is on hold: the ConfigMap not read yet");
        c.floor().raise(9, "the ConfigMap");
        c.floor().release(read);
        await().atMost(Duration.ofSeconds(10)).until(() -> !c.floor().held());
        assertThat(c.start().join().placement().getEpoch()).isEqualTo(10);
        c.floor().hold("another router holds the lease");
        assertThatThrownBy(() -> c.replan(null)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("another router holds the lease");
        assertThatThrownBy(() -> c.switchTo(INSTANCES, PlacementBudget.slots(3, 4), 1))
                .isInstanceOf(IllegalStateException.class);
        assertThat(events).doesNotContain("prepare 11 expert-0");
    }

    @Test
    void replan_publishesEpochPlusOne_evenWhenThePlanIsUnchanged_andWatchersGetEachEpochOnce() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        List<Long> seen = new CopyOnWriteArrayList<>();
        c.watch(0, "gateway gw-test", p -> seen.add(p.getEpoch()));
        Placement second = c.replan(null).join().placement();
        Placement third = c.replan(null).join().placement();
        assertThat(seen).containsExactly(1L, 2L, 3L);
        // Too few routes: the even deal both times, so only the epoch differs.
        assertThat(third.toBuilder().setEpoch(2).build()).isEqualTo(second);
        assertThat(PlacementFiles.read(stateDir.resolve("placement.json")).getEpoch()).isEqualTo(3);
    }

    @Test
    void replan_withEnoughRoutes_usesThePlanner() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        for (int i = 0; i < 50; i++) {
            book.ingest(List.<ReportedToken>of(TestRoutes.token("r" + i, 0, i % 5)));
        }
        ReplanOutcome o = c.replan("round-robin").join();
        assertThat(o.planner()).isEqualTo("round-robin");
        assertThat(o.score()).isNotNull();
        assertThat(o.routesScored()).isEqualTo(50);
        assertThat(o.placement().getEpoch()).isEqualTo(2);
    }

    @Test
    void replan_whoseLoadFailsOnOneInstance_isNotPublished_namesTheInstance_andTheOldEpochStays() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        List<Long> seen = new CopyOnWriteArrayList<>();
        c.watch(0, "gateway gw-test", p -> seen.add(p.getEpoch()));
        failing.add("expert-1");
        assertThatThrownBy(() -> c.replan(null).join()).isInstanceOf(CompletionException.class)
                .cause().isInstanceOf(ReplanAbortedException.class)
                .hasMessageContaining("placement epoch 2 was not published: expert-1 (127.0.0.1:1): UNAVAILABLE")
                .hasMessageContaining("epoch 1 stays current");
        assertThat(c.currentEpoch()).isEqualTo(1);
        assertThat(seen).containsExactly(1L);
        assertThat(PlacementFiles.read(stateDir.resolve("placement.json")).getEpoch()).isEqualTo(1);
        // The same assignment again (a retry: the even deal) keeps epoch 2; an instance that loaded it accepts it again.
        failing.clear();
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(2);
        assertThat(seen).containsExactly(1L, 2L);
    }

    @Test
    void replan_withAnotherAssignment_afterAFailure_reusesTheUnpublishedEpoch_abortingItWhereItMayBeHeld() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        failing.add("expert-0");
        assertThatThrownBy(() -> c.replan(null).join()).hasCauseInstanceOf(ReplanAbortedException.class);
        failing.clear();
        for (int i = 0; i < 50; i++) {
            book.ingest(List.<ReportedToken>of(TestRoutes.token("r" + i, 0, i % 5)));
        }
        events.clear();
        // The affinity plan (with replicas in the spare slots) differs from the failed even deal of epoch 2, and still
        // gets epoch 2: it was never published. expert-0 did not answer the first PREPARE (it may hold the even deal
        // prepared), so it is told to ABORT epoch 2 first; the others confirmed their ABORT already.
        ReplanOutcome o = c.replan(null).join();
        assertThat(o.placement().toBuilder().setEpoch(2).build())
                .isNotEqualTo(io.moemesh.service.placement.EvenPlacement.build(2, INSTANCES, 4, 8, false, 1));
        assertThat(o.placement().getEpoch()).isEqualTo(2);
        assertThat(events.indexOf("abort 2 expert-0")).isNotNegative().isLessThan(events.indexOf("prepare 2 expert-0"));
        assertThat(events).doesNotContain("abort 2 expert-1", "abort 2 expert-2");
    }

    @Test
    void replan_whileOneRuns_isRefused_andBeforeEpoch1_too() throws Exception {
        PlacementCoordinator c = coordinator(1, 10);
        assertThatThrownBy(() -> c.replan(null)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("no placement epoch is published yet");
        c.start().join();
        loader.gate = new CountDownLatch(1);
        var running = c.replan(null);
        assertThatThrownBy(() -> c.replan(null)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("a replan is already running");
        loader.gate.countDown();
        assertThat(running.get(30, TimeUnit.SECONDS).placement().getEpoch()).isEqualTo(2);
        await().atMost(Duration.ofSeconds(10)).until(() -> !c.replanRunning());
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(3);
    }

    @Test
    void replan_withAnUnknownPlanner_isRefused_listingTheNames() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        assertThatThrownBy(() -> c.replan("nope")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("planner: must be one of affinity, affinity-stats, round-robin, got \"nope\"");
    }

    @Test
    void restart_continuesAtThePublishedEpoch_preparingItAgainOnEachInstance_andNeverPublishesALowerOne() {
        PlacementCoordinator first = coordinator(1, 10);
        first.start().join();
        first.replan(null).join();
        failing.add("expert-2");
        assertThatThrownBy(() -> first.replan(null).join()).hasCauseInstanceOf(ReplanAbortedException.class);
        assertThat(first.currentEpoch()).isEqualTo(2);
        first.close();
        failing.clear();
        loaded.clear();
        PlacementCoordinator second = coordinator(1, 10);
        events.clear();
        ReplanOutcome o = second.start().join();
        assertThat(o.placement().getEpoch()).isEqualTo(2);
        assertThat(o.planner()).isEqualTo("restored");
        // An instance may have restarted too: each is PREPAREd again (a no-op where served), then published ...
        assertThat(loaded).containsOnlyKeys(2L);
        assertThat(events.subList(0, 3))
                .containsExactlyInAnyOrderElementsOf(each("prepare", 2, "expert-0", "expert-1", "expert-2"));
        assertThat(events.get(3)).isEqualTo("published 2");
        // ... and, as the last run may have stopped before its COMMITs, each instance is told again.
        assertThat(events.subList(4, events.size()))
                .containsExactlyInAnyOrderElementsOf(each("commit", 2, "expert-0", "expert-1", "expert-2"));
        // Epoch 3 was attempted before the restart: the next one is 4.
        assertThat(second.replan(null).join().placement().getEpoch()).isEqualTo(4);
    }

    @Test
    void restart_continuesAtAnEpochSavedBeforeFailureDomainsExisted_takingTheDomainsFromDiscovery() {
        PlacementCoordinator first = coordinator(1, 10);
        first.start().join();
        first.replan(null).join();
        first.close();
        // The same pods (id and endpoint), now reported with their nodes.
        List<Instance> withNodes = INSTANCES.stream().map(in -> in.toBuilder().setFailureDomain("node-" + in.getId())
                .build()).toList();
        var settings = new PlacementCoordinator.Settings(withNodes, book.shape(), false, 1,
                PlacementBudget.slots(3, 4), "affinity", 10, Duration.ofSeconds(30));
        PlacementCoordinator second = new PlacementCoordinator(settings, book, loader,
                new EpochStore(stateDir), Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(3),
                System::nanoTime);
        coordinators.add(second);
        ReplanOutcome o = second.start().join();
        assertThat(o.planner()).isEqualTo("restored");
        assertThat(o.placement().getEpoch()).isEqualTo(2);
        assertThat(o.placement().getInstancesList()).isEqualTo(withNodes);
    }

    @Test
    void start_withoutConfiguredInstances_isRefused_andSwitchToAnEmptySetToo() {
        var settings = new PlacementCoordinator.Settings(List.of(), book.shape(), false, 1,
                PlacementBudget.slots(1, 8), "affinity", 1, Duration.ofSeconds(1));
        PlacementCoordinator c = new PlacementCoordinator(settings, book, loader, new EpochStore(stateDir),
                Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(3), System::nanoTime);
        coordinators.add(c);
        assertThatThrownBy(c::start).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("instances are discovered");
        assertThatThrownBy(() -> c.switchTo(List.of(), PlacementBudget.slots(1, 8), 1))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at least one expert-service instance");
        assertThat(c.current()).isNull();
    }

    @Test
    void switchTo_aNewSet_preparesOnlyItsInstances_andPublishesTheNextEpochForExactlyThem() {
        PlacementCoordinator c = coordinator(2, 10);
        c.start().join();
        events.clear();
        List<Instance> two = INSTANCES.subList(0, 2);
        ReplanOutcome o = c.switchTo(two, PlacementBudget.slots(2, 8), 2).join();
        assertThat(o.placement().getEpoch()).isEqualTo(2);
        assertThat(o.placement().getInstancesList()).isEqualTo(two);
        assertThat(c.instances()).isEqualTo(two);
        assertThat(events).doesNotContain("prepare 2 expert-2", "commit 2 expert-2");
        assertThat(loaded.get(2L)).containsOnlyKeys("expert-0", "expert-1");
        // expert-2 left: the loader may let its connection go.
        assertThat(placedOn).containsExactly(List.of("expert-0", "expert-1", "expert-2"), List.of("expert-0", "expert-1"));
        // A Replan afterwards plans for the new set.
        assertThat(c.replan(null).join().placement().getInstancesList()).isEqualTo(two);
    }

    @Test
    void switchTo_beforeTheFirstEpoch_dealsEvenlyOverTheGivenSet_asEpoch1() {
        var settings = new PlacementCoordinator.Settings(List.of(), book.shape(), false, 2,
                PlacementBudget.slots(1, 8), "affinity", 10, Duration.ofSeconds(30));
        PlacementCoordinator c = new PlacementCoordinator(settings, book, loader, new EpochStore(stateDir),
                Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(3), System::nanoTime);
        coordinators.add(c);
        ReplanOutcome o = c.switchTo(INSTANCES.subList(1, 2), PlacementBudget.slots(1, 8), 1).join();
        assertThat(o.placement().getEpoch()).isEqualTo(1);
        assertThat(o.planner()).isEqualTo(PlacementCoordinator.EVEN);
        assertThat(loaded.get(1L)).containsOnlyKeys("expert-1");
    }

    @Test
    void replan_preparesEveryInstanceBeforePublishing_andCommitsEveryInstanceAfter() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        events.clear();
        c.watch(1, "gateway gw-test", p -> events.add("watcher " + p.getEpoch()));
        c.replan(null).join();
        List<String> prepares = each("prepare", 2, "expert-0", "expert-1", "expert-2");
        List<String> commits = each("commit", 2, "expert-0", "expert-1", "expert-2");
        assertThat(events.subList(0, 3)).containsExactlyInAnyOrderElementsOf(prepares);
        assertThat(events.subList(3, 5)).containsExactly("watcher 2", "published 2");
        assertThat(events.subList(5, events.size())).containsExactlyInAnyOrderElementsOf(commits);
        assertThat(c.commitFailures()).isZero();
        assertThat(c.pendingCommits()).isZero();
        assertThat(diskEpochAt).as("placement.json when each call was made")
                .containsAllEntriesOf(prepares.stream().collect(Collectors.toMap(e -> e, e -> 1L)))
                .containsAllEntriesOf(commits.stream().collect(Collectors.toMap(e -> e, e -> 2L)));
    }

    @Test
    void replan_whosePrepareFailsOnOneInstance_abortsItWhereItWasPrepared_andCommitsNothing() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        events.clear();
        failing.add("expert-1");
        assertThatThrownBy(() -> c.replan(null).join()).cause().isInstanceOf(ReplanAbortedException.class)
                .hasMessage("placement epoch 2 was not published: expert-1 (127.0.0.1:1): UNAVAILABLE io exception "
                        + "failed LoadAssignment (PREPARE); epoch 1 stays current");
        assertThat(events).containsExactlyInAnyOrderElementsOf(Stream.concat(
                each("prepare", 2, "expert-0", "expert-2").stream(),
                each("abort", 2, "expert-0", "expert-2").stream()).toList());
        assertThat(events.subList(0, 2)).allMatch(e -> e.startsWith("prepare"));
        assertThat(c.currentEpoch()).isEqualTo(1);
    }

    @Test
    void abortThatFails_isBestEffort_theReplanFailsNamingTheInstanceThatDidNotPrepare() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        failing.add("expert-1");
        failingAbort.add("expert-0");
        assertThatThrownBy(() -> c.replan(null).join()).cause().isInstanceOf(ReplanAbortedException.class)
                .hasMessageContaining("expert-1 (127.0.0.1:1): UNAVAILABLE").hasMessageNotContaining("expert-0");
        assertThat(events).contains("abort 2 expert-2").doesNotContain("abort 2 expert-0");
        failing.clear();
        failingAbort.clear();
        // expert-0 still holds epoch 2 prepared: the retry is the same assignment, so it prepares it again as a no-op.
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(2);
    }

    @Test
    void commitThatFails_isCounted_theEpochStaysPublished_andTheCommitIsRetriedBeforeTheNextPrepare() {
        PlacementCoordinator c = coordinator(1, 10);
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        new RouterMetrics(registry, book, c);
        c.start().join();
        failingCommit.add("expert-2");
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(2);
        assertThat(c.currentEpoch()).isEqualTo(2);
        assertThat(c.commitFailures()).isEqualTo(1);
        assertThat(c.pendingCommits()).isEqualTo(1);
        assertThat(registry.get("moemesh.router.commit.failures").functionCounter().count()).isEqualTo(1);
        assertThat(registry.get("moemesh.router.commit.pending").gauge().value()).isEqualTo(1);
        assertThat(events).doesNotContain("commit 2 expert-2");
        failingCommit.clear();
        events.clear();
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(3);
        assertThat(events.getFirst()).isEqualTo("commit 2 expert-2");
        assertThat(events).filteredOn(e -> e.startsWith("prepare 3")).hasSize(3);
        assertThat(c.pendingCommits()).isZero();
        assertThat(c.commitFailures()).isEqualTo(1);
        assertThat(registry.get("moemesh.router.commit.pending").gauge().value()).isZero();
    }

    @Test
    void commitRetryThatFailsAgain_abortsTheNextReplanBeforeAnythingIsPrepared() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        failingCommit.add("expert-2");
        c.replan(null).join();
        events.clear();
        assertThatThrownBy(() -> c.replan(null).join()).cause().isInstanceOf(ReplanAbortedException.class)
                .hasMessageContaining("no new placement epoch was prepared: expert-2 (127.0.0.1:1): epoch 2: UNAVAILABLE")
                .hasMessageContaining("epoch 2 stays current");
        assertThat(events).isEmpty();
        assertThat(c.commitFailures()).isEqualTo(2);
        failingCommit.clear();
        assertThat(c.replan(null).join().placement().getEpoch()).as("no epoch number was used up").isEqualTo(3);
    }

    @Test
    void commitRetry_refusedByAnInstanceThatNoLongerHoldsTheEpoch_isDropped_andTheReplanGoesOn() {
        PlacementCoordinator c = coordinator(1, 10);
        c.start().join();
        failingCommit.add("expert-2");
        c.replan(null).join();
        failingCommit.clear();
        refusingCommit.add("expert-2"); // restarted without the epoch: nothing of it to lose
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(3);
        assertThat(c.pendingCommits()).as("epoch 3's COMMIT is refused too").isEqualTo(1);
        refusingCommit.clear();
        c.replan(null).join();
        assertThat(c.pendingCommits()).isZero();
    }
}
