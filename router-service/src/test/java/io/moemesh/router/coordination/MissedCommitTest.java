package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.support.TestRoutes;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A COMMIT an instance missed outlives the instance's brief absence from the set (a readiness flap). */
class MissedCommitTest {
    static final List<Instance> THREE = PlacementCoordinatorTest.INSTANCES;

    @TempDir
    Path stateDir;
    final ScriptedLoader loader = new ScriptedLoader(() -> stateDir);
    final RouteBook book = TestRoutes.book(1000);
    PlacementCoordinator c;

    @AfterEach
    void close() {
        c.close();
    }

    @Test
    void aMissedCommit_ofAnInstanceThatBrieflyLeftTheSet_isDeliveredBeforeTheNextPrepare_onceItIsBack() {
        var settings = new PlacementCoordinator.Settings(THREE, book.shape(), false, 1, PlacementBudget.slots(3, 4),
                "affinity", 10, Duration.ofSeconds(30));
        c = new PlacementCoordinator(settings, book, loader, new EpochStore(stateDir),
                Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(3), System::nanoTime);
        c.start().join();
        // expert-2 misses the COMMIT of epoch 2: it holds epoch 2 prepared only.
        loader.failingCommit.add("expert-2");
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(2);
        loader.failingCommit.clear();
        // Its readiness flaps: the set without it is switched to, which fails on expert-0, so epoch 2 stays current.
        loader.failing.add("expert-0");
        assertThatThrownBy(() -> c.switchTo(THREE.subList(0, 2), PlacementBudget.slots(2, 4), 1).join())
                .hasCauseInstanceOf(ReplanAbortedException.class);
        loader.failing.clear();
        assertThat(c.currentEpoch()).isEqualTo(2);
        assertThat(c.pendingCommits()).as("expert-2's missed COMMIT is kept while it is out").isEqualTo(1);
        // expert-2 is back: the set is the current one, so no switch runs; the next replan commits epoch 2 on it
        // before it prepares epoch 3 there (which would replace the epoch 2 it holds only prepared).
        loader.events.clear();
        assertThat(c.replan(null).join().placement().getEpoch()).isEqualTo(3);
        assertThat(loader.events).contains("commit 2 expert-2");
        assertThat(loader.events.indexOf("commit 2 expert-2")).isLessThan(loader.events.indexOf("prepare 3 expert-2"));
        assertThat(c.pendingCommits()).isZero();
    }
}
