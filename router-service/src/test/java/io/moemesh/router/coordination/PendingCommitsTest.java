package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.EvenPlacement;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Missed COMMITs of a Kubernetes pod that restarts: same name (instance id), new pod IP (endpoint). */
class PendingCommitsTest {
    static final Instance OLD = Instance.newBuilder().setId("expert-1").setEndpoint("10.0.0.1:9100").build();
    static final Instance RESTARTED = OLD.toBuilder().setEndpoint("10.0.0.2:9100").build();
    static final Instance OTHER = Instance.newBuilder().setId("expert-0").setEndpoint("10.0.0.7:9100").build();

    /** COMMITs sent: "epoch id@endpoint". */
    final List<String> commits = new CopyOnWriteArrayList<>();
    /** Endpoints that do not answer (UNAVAILABLE). */
    final Set<String> dead = ConcurrentHashMap.newKeySet();
    final ExecutorService executor = Executors.newFixedThreadPool(2);
    final PendingCommits pending = new PendingCommits(new InstanceLoader() {
        @Override
        public void prepare(Instance instance, long epoch, List<AssignedExpert> experts, Duration timeout) {
            throw new AssertionError("PendingCommits never prepares");
        }

        @Override
        public void commit(Instance instance, long epoch, Duration timeout) {
            commits.add(epoch + " " + instance.getId() + "@" + instance.getEndpoint());
            if (dead.contains(instance.getEndpoint())) {
                throw new IllegalStateException("UNAVAILABLE no route to host");
            }
        }

        @Override
        public void abort(Instance instance, long epoch, Duration timeout) {
            throw new AssertionError("PendingCommits never aborts");
        }

        @Override
        public HeldEpochs held(Instance instance, Duration timeout) {
            return HeldEpochs.NONE;
        }
    }, new ParallelLoads(executor, Duration.ofSeconds(5)), Duration.ofSeconds(5));

    @AfterEach
    void stop() {
        executor.shutdownNow();
    }

    static Placement epoch(long epoch, Instance... instances) {
        return EvenPlacement.build(epoch, List.of(instances), 2, 4, false, 1);
    }

    @Test
    void aMissedCommit_ofAnInstanceThatCameBackAtAnotherEndpoint_isDropped_notRetriedAtTheDeadAddress()
            throws Exception {
        dead.add(OLD.getEndpoint());
        pending.commitEverywhere(epoch(5, OTHER, OLD));
        assertThat(pending.size()).isEqualTo(1);
        commits.clear();
        // While it is at the same endpoint, the retry goes there and a failure still blocks the next PREPARE.
        assertThatThrownBy(() -> pending.retry(List.of(OTHER, OLD), 5)).isInstanceOf(ReplanAbortedException.class)
                .hasMessageContaining("expert-1 (10.0.0.1:9100): epoch 5: UNAVAILABLE");
        assertThat(commits).containsExactly("5 expert-1@10.0.0.1:9100");
        commits.clear();

        // The pod restarted: same name, new IP. It never prepared epoch 5, so there is nothing of it to commit.
        pending.retry(List.of(OTHER, RESTARTED), 5);
        assertThat(commits).isEmpty();
        assertThat(pending.size()).isZero();
        // The next epoch's COMMIT goes to the new address, and a miss there is one entry, for it.
        dead.add(RESTARTED.getEndpoint());
        pending.commitEverywhere(epoch(6, OTHER, RESTARTED));
        assertThat(pending.size()).isEqualTo(1);
    }

    @Test
    void aMissedCommit_isKeyedByInstanceId_soTheSamePodAtTwoEndpointsIsOneEntry() throws Exception {
        dead.add(OLD.getEndpoint());
        dead.add(RESTARTED.getEndpoint());
        pending.commitEverywhere(epoch(5, OLD));
        pending.commitEverywhere(epoch(6, RESTARTED));
        assertThat(pending.size()).isEqualTo(1);
        commits.clear();
        dead.clear();
        pending.retry(List.of(RESTARTED), 6);
        assertThat(commits).containsExactly("6 expert-1@10.0.0.2:9100");
        assertThat(pending.size()).isZero();
    }

    @Test
    void aMissedCommit_ofAnInstanceOutOfTheSet_isKept_untilANewerEpochIsPublishedWithoutIt() throws Exception {
        dead.add(OLD.getEndpoint());
        pending.commitEverywhere(epoch(5, OTHER, OLD));
        commits.clear();
        // Out of the set for now: not asked, not forgotten.
        pending.retry(List.of(OTHER), 5);
        assertThat(commits).isEmpty();
        assertThat(pending.size()).isEqualTo(1);
        // Epoch 6 is published without it: the gateways leave epoch 5, the missed COMMIT is superseded.
        pending.commitEverywhere(epoch(6, OTHER));
        assertThat(pending.size()).isZero();
    }
}
