package io.moemesh.router.discovery;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.groups.Tuple.tuple;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.AbstractExecutorService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Which pods the router marks placed or no longer placed for the readiness gate (plain objects). */
class PlacedGateTest {
    static final LabelSelector SELECTOR = LabelSelector.parse("app=moemesh,component=expert-service");
    static final Map<String, String> LABELS = Map.of("app", "moemesh", "component", "expert-service");

    static ExpertPod pod(String name, String ip, boolean containersReady, boolean placed, boolean terminating) {
        return new ExpertPod(name, LABELS, Map.of(), terminating, "Running", containersReady, ip, 9100, "node-a",
                placed);
    }

    /** The epoch's instance for a pod as discovery makes it. */
    static Instance instance(String name, String ip) {
        return pod(name, ip, true, false, false).judge(SELECTOR, 9100).instance();
    }

    static Placement epoch(long epoch, Instance... instances) {
        return Placement.newBuilder().setEpoch(epoch).addAllInstances(List.of(instances)).build();
    }

    static List<PlacedGate.Change> due(List<ExpertPod> pods, Placement epoch, String... committed) {
        return PlacedGate.due(pods, epoch, Set.of(committed), Map.of(), SELECTOR, 9100);
    }

    @Test
    void aPodTheCommittedEpochPlacesOn_isMarkedPlaced_evenThoughItIsNotReadyYet_andNothingBeforeAnEpoch() {
        List<ExpertPod> pods = List.of(pod("expert-0", "10.0.0.1", true, false, false),
                pod("expert-1", "10.0.0.2", true, true, false));
        Placement p = epoch(4, instance("expert-0", "10.0.0.1"), instance("expert-1", "10.0.0.2"));
        assertThat(due(pods, p, "expert-0", "expert-1")).containsExactly(new PlacedGate.Change("expert-0", null, true,
                PlacedGate.PLACED, "placement epoch 4 places experts on this pod, which committed it"));
        assertThat(due(pods, null)).isEmpty();
    }

    @Test
    void aPodThatMissedTheCommit_orIsANewPodAtAnotherIpUnderTheSameName_isNotMarked() {
        Placement p = epoch(4, instance("expert-0", "10.0.0.1"), instance("expert-1", "10.0.0.2"));
        List<ExpertPod> pods = List.of(pod("expert-0", "10.0.0.1", true, false, false),
                pod("expert-1", "10.0.0.9", true, false, false));
        assertThat(due(pods, p, "expert-1")).as("expert-0 missed the COMMIT; expert-1 is a new pod").isEmpty();
    }

    @Test
    void aPodWhoseContainerRestartedAtTheSameIp_afterTheEpochWasPlacedOnIt_isNotMarked() {
        Placement p = epoch(4, instance("expert-0", "10.0.0.1"), instance("expert-1", "10.0.0.2"));
        ExpertPod restarted = new ExpertPod("expert-1", LABELS, Map.of(), false, "Running", true, "10.0.0.2", 9100,
                "node-a", false, "uid-1", 3);
        ExpertPod same = new ExpertPod("expert-0", LABELS, Map.of(), false, "Running", true, "10.0.0.1", 9100,
                "node-a", false, "uid-0", 1);
        // Placed with restart counts 1 and 2: expert-1 restarted since (3), holds nothing, waits to be placed again.
        assertThat(PlacedGate.due(List.of(same, restarted), p, Set.of("expert-0", "expert-1"),
                Map.of("expert-0", 1, "expert-1", 2), SELECTOR, 9100)).extracting(PlacedGate.Change::pod,
                PlacedGate.Change::uid).containsExactly(tuple("expert-0", "uid-0"));
    }

    @Test
    void aPlacedPodWhoseContainerRestartedAtTheSameIp_whileTheEpochStillIncludesIt_isMarkedNotPlaced() {
        // OOM-killed after it was placed, its container ready again at the same IP before the router re-placed: the
        // new process holds nothing, so it must not stay Ready (the PDB would count it as a holder).
        Placement p = epoch(4, instance("expert-0", "10.0.0.1"), instance("expert-1", "10.0.0.2"));
        ExpertPod restarted = new ExpertPod("expert-1", LABELS, Map.of(), false, "Running", true, "10.0.0.2", 9100,
                "node-a", true, "uid-1", 3);
        ExpertPod same = new ExpertPod("expert-0", LABELS, Map.of(), false, "Running", true, "10.0.0.1", 9100,
                "node-a", true, "uid-0", 1);
        assertThat(PlacedGate.due(List.of(same, restarted), p, Set.of("expert-0", "expert-1"),
                Map.of("expert-0", 1, "expert-1", 2), SELECTOR, 9100)).containsExactly(new PlacedGate.Change(
                "expert-1", "uid-1", false, PlacedGate.NOT_PLACED, "its container restarted (restart count 3, placed "
                + "by placement epoch 4 at 2) and holds nothing: the router places on it again"));
    }

    @Test
    void aPlacedPodANewerEpochNoLongerIncludes_isMarkedNotPlaced_butTerminatingPodsAreLeftAlone() {
        // expert-1's container restarted: discovery dropped it, the router re-placed without it; the restarted
        // process holds nothing and must not turn Ready before the router places on it again.
        List<ExpertPod> pods = List.of(pod("expert-0", "10.0.0.1", true, true, false),
                pod("expert-1", "10.0.0.2", false, true, false), pod("expert-2", "10.0.0.3", true, true, true));
        Placement p = epoch(5, instance("expert-0", "10.0.0.1"));
        assertThat(due(pods, p, "expert-0")).containsExactly(new PlacedGate.Change("expert-1", null, false,
                PlacedGate.NOT_PLACED, "placement epoch 5 does not include this pod: the router places on it again "
                + "once its containers are ready"));
    }

    /** Runs the writes on the calling thread, so each step's writes are done when it returns. */
    static ExecutorService direct() {
        return new AbstractExecutorService() {
            private volatile boolean shut;

            @Override
            public void execute(Runnable r) {
                r.run();
            }

            @Override
            public void shutdown() {
                shut = true;
            }

            @Override
            public List<Runnable> shutdownNow() {
                shut = true;
                return List.of();
            }

            @Override
            public boolean isShutdown() {
                return shut;
            }

            @Override
            public boolean isTerminated() {
                return shut;
            }

            @Override
            public boolean awaitTermination(long timeout, TimeUnit unit) {
                return true;
            }
        };
    }

    @Test
    void aWriteThatFails_isDueAgainAtTheNextPodList_andNeverReachesTheReplan() {
        List<PlacedGate.Change> written = new ArrayList<>();
        AtomicInteger refusals = new AtomicInteger(1);
        try (PlacedGate gate = new PlacedGate(c -> {
            if (refusals.getAndDecrement() > 0) {
                throw new IllegalStateException("HTTP 403");
            }
            written.add(c);
        }, SELECTOR, 9100, direct())) {
            List<ExpertPod> pods = List.of(pod("expert-0", "10.0.0.1", true, false, false));
            gate.pods(pods);
            gate.committed(epoch(1, instance("expert-0", "10.0.0.1")), List.of("expert-0")); // does not throw
            assertThat(gate.failures()).isEqualTo(1);
            assertThat(written).isEmpty();
            gate.pods(pods); // the next list (every resync period)
            assertThat(written).extracting(PlacedGate.Change::pod, PlacedGate.Change::placed)
                    .containsExactly(tuple("expert-0", true));
            assertThat(gate.writes()).isEqualTo(1);
        }
    }

    @Test
    void anOlderEpochCommittedLate_doesNotReplaceANewerOne() {
        List<PlacedGate.Change> written = new ArrayList<>();
        try (PlacedGate gate = new PlacedGate(written::add, SELECTOR, 9100, direct())) {
            gate.committed(epoch(7, instance("expert-0", "10.0.0.1")), List.of("expert-0"));
            gate.committed(epoch(6, instance("expert-1", "10.0.0.2")), List.of("expert-1"));
            gate.pods(List.of(pod("expert-0", "10.0.0.1", true, false, false),
                    pod("expert-1", "10.0.0.2", true, false, false)));
            assertThat(written).extracting(PlacedGate.Change::pod).containsExactly("expert-0");
        }
    }
}
