package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.support.TestRoutes;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Which epoch numbers failed switches use, against instances that keep the expert-service's rules (AssignmentManager):
 * an epoch is one assignment, PREPARE of an epoch older than the served or prepared one is refused, and so is one
 * more than the max-epoch-jump above the served one; ABORT drops a prepared epoch.
 */
class EpochAttemptsTest {
    static final List<Instance> INSTANCES = PlacementCoordinatorTest.INSTANCES;
    /** Small, so that climbing past it takes few attempts (the expert-service's default is 1000). */
    static final long MAX_EPOCH_JUMP = 10;

    @TempDir
    Path stateDir;
    final RouteBook book = TestRoutes.book(1000);
    final Map<String, Expert> experts = new ConcurrentHashMap<>();
    /** "prepare 2 expert-0", "abort 2 expert-0", "commit 2 expert-0": the calls each instance answered. */
    final List<String> events = new CopyOnWriteArrayList<>();
    final List<PlacementCoordinator> coordinators = new ArrayList<>();

    /** One expert-service instance's epochs. */
    static final class Expert {
        long served;
        List<AssignedExpert> servedExperts = List.of();
        long prepared;
        List<AssignedExpert> preparedExperts = List.of();
        /** Answers nothing (UNAVAILABLE). */
        volatile boolean down;
        /** Answers nothing to ABORT only. */
        volatile boolean abortsLost;
    }

    final class Experts implements InstanceLoader {
        private Expert answering(Instance in) {
            Expert x = experts.computeIfAbsent(in.getId(), id -> new Expert());
            if (x.down) {
                throw new IllegalStateException("UNAVAILABLE connection refused");
            }
            return x;
        }

        private static InstanceRefusedException refused(String why) {
            return new InstanceRefusedException("FAILED_PRECONDITION " + why, null);
        }

        @Override
        public void prepare(Instance in, long epoch, List<AssignedExpert> assigned, Duration timeout) {
            Expert x = answering(in);
            synchronized (x) {
                events.add("prepare " + epoch + " " + in.getId());
                if (epoch < x.served) {
                    throw refused("assignment epoch " + epoch + " is older than the served epoch " + x.served);
                }
                if (x.served != 0 && epoch - x.served > MAX_EPOCH_JUMP) {
                    throw refused("assignment epoch " + epoch + " jumps past the served epoch " + x.served);
                }
                if (epoch == x.served || epoch == x.prepared) {
                    if (!assigned.equals(epoch == x.served ? x.servedExperts : x.preparedExperts)) {
                        throw refused("epoch " + epoch + " is already held with a different assignment");
                    }
                    return;
                }
                if (epoch < x.prepared) {
                    throw refused("assignment epoch " + epoch + " is older than the prepared epoch " + x.prepared);
                }
                x.prepared = epoch;
                x.preparedExperts = List.copyOf(assigned);
            }
        }

        @Override
        public void commit(Instance in, long epoch, Duration timeout) {
            Expert x = answering(in);
            synchronized (x) {
                events.add("commit " + epoch + " " + in.getId());
                if (epoch == x.served) {
                    return;
                }
                if (epoch != x.prepared) {
                    throw refused("cannot commit epoch " + epoch + ": it is neither prepared nor served");
                }
                x.served = epoch;
                x.servedExperts = x.preparedExperts;
                x.prepared = 0;
            }
        }

        @Override
        public void abort(Instance in, long epoch, Duration timeout) {
            Expert x = answering(in);
            if (x.abortsLost) {
                throw new IllegalStateException("DEADLINE_EXCEEDED");
            }
            synchronized (x) {
                events.add("abort " + epoch + " " + in.getId());
                if (epoch == x.served) {
                    throw refused("cannot abort epoch " + epoch + ": it is the served epoch");
                }
                if (epoch == x.prepared) {
                    x.prepared = 0;
                }
            }
        }

        @Override
        public HeldEpochs held(Instance in, Duration timeout) {
            Expert x = answering(in);
            synchronized (x) {
                return new HeldEpochs(x.served, x.servedExperts, x.prepared);
            }
        }
    }

    Expert expert(int i) {
        return experts.computeIfAbsent(INSTANCES.get(i).getId(), id -> new Expert());
    }

    PlacementCoordinator coordinator() {
        var settings = new PlacementCoordinator.Settings(INSTANCES, book.shape(), false, 1,
                PlacementBudget.slots(3, 8), "affinity", 10, Duration.ofSeconds(30));
        PlacementCoordinator c = new PlacementCoordinator(settings, book, new Experts(), new EpochStore(stateDir),
                Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(3), System::nanoTime);
        coordinators.add(c);
        return c;
    }

    /** The next epoch on every instance, the even deal with {@code replicas} copies: it differs from 1 to 2. */
    static ReplanOutcome switchTo(PlacementCoordinator c, int replicas) {
        return c.switchTo(INSTANCES, PlacementBudget.slots(3, 8), replicas).join();
    }

    @AfterEach
    void close() {
        coordinators.forEach(PlacementCoordinator::close);
    }

    @Test
    void failedSwitches_withADifferentPlanEachTime_retryAtTheSameEpoch_soTheInstanceThatComesBackAcceptsIt() {
        PlacementCoordinator c = coordinator();
        assertThat(c.start().join().placement().getEpoch()).isEqualTo(1);
        expert(2).down = true;
        // More tries than the instances' max-epoch-jump, each with other experts than the one before.
        for (int i = 0; i < 3 * MAX_EPOCH_JUMP; i++) {
            int replicas = 1 + i % 2;
            assertThatThrownBy(() -> switchTo(c, replicas)).isInstanceOf(CompletionException.class)
                    .cause().isInstanceOf(ReplanAbortedException.class)
                    .hasMessageStartingWith("placement epoch 2 was not published: expert-2");
        }
        assertThat(new EpochStore(stateDir).restoreHighestAttempted()).isEqualTo(2);
        expert(2).down = false;
        assertThat(switchTo(c, 2).placement().getEpoch()).isEqualTo(2);
        assertThat(expert(0).served).isEqualTo(2);
        assertThat(expert(2).served).isEqualTo(2);
    }

    @Test
    void theUnpublishedEpoch_reusedWithOtherExperts_isAbortedFirstWhereItsAbortWasLost() {
        PlacementCoordinator c = coordinator();
        c.start().join();
        expert(2).down = true;
        expert(0).abortsLost = true;
        assertThatThrownBy(() -> switchTo(c, 1)).hasCauseInstanceOf(ReplanAbortedException.class);
        assertThat(expert(0).prepared).as("expert-0 missed the ABORT").isEqualTo(2);
        expert(2).down = false;
        expert(0).abortsLost = false;
        events.clear();
        // Epoch 2 with two copies now: expert-0 is told to ABORT its one-copy epoch 2 before the new PREPARE.
        assertThat(switchTo(c, 2).placement().getEpoch()).isEqualTo(2);
        assertThat(events.indexOf("abort 2 expert-0")).isNotNegative()
                .isLessThan(events.indexOf("prepare 2 expert-0"));
        assertThat(events).doesNotContain("abort 2 expert-1");
        assertThat(expert(0).served).isEqualTo(2);
    }

    @Test
    void anInstanceThatRefusesTheEpoch_andHoldsIt_makesTheNextAttemptGoAboveIt() {
        PlacementCoordinator c = coordinator();
        c.start().join();
        // expert-1 holds epoch 2 prepared with other experts (another router's, or one whose ABORT never came).
        synchronized (expert(1)) {
            expert(1).prepared = 2;
            expert(1).preparedExperts = List.of(new AssignedExpert(0, 0));
        }
        assertThatThrownBy(() -> switchTo(c, 1)).cause().isInstanceOf(ReplanAbortedException.class)
                .hasMessageContaining("expert-1 (127.0.0.1:1): FAILED_PRECONDITION epoch 2 is already held");
        // The same plan again goes to epoch 3: epoch 2 is expert-1's.
        assertThat(switchTo(c, 1).placement().getEpoch()).isEqualTo(3);
        assertThat(events).doesNotContain("abort 2 expert-1");
    }

    @Test
    void aFloorRaisedByWhatInstancesHold_isNeverLowered_byRetryingTheLastFailedEpoch() {
        expert(2).down = true;
        PlacementCoordinator first = coordinator();
        assertThatThrownBy(() -> first.start().join()).hasCauseInstanceOf(ReplanAbortedException.class);
        expert(2).down = false;
        // Epoch 1 is now prepared on expert-0 with other experts than the even deal the failed start tried.
        synchronized (expert(0)) {
            expert(0).prepared = 1;
            expert(0).preparedExperts = List.of(new AssignedExpert(0, 0));
        }
        events.clear();
        ReplanOutcome o = first.start().join();
        assertThat(o.placement().getEpoch()).isEqualTo(2);
        assertThat(events).doesNotContain("abort 1 expert-0");
        assertThat(new EpochStore(stateDir).restoreHighestAttempted()).isEqualTo(2);
    }
}
