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

/** The coordinator over three scripted instances ({@link ScriptedLoader}) that its tests share. */
abstract class PlacementCoordinatorFixture {
    static final List<Instance> INSTANCES = List.of(instance("expert-0"), instance("expert-1"), instance("expert-2"));

    @TempDir
    Path stateDir;
    /** Records every call, fails where the test says ({@link ScriptedLoader}). */
    final ScriptedLoader loader = new ScriptedLoader(() -> stateDir);
    final Map<Long, Map<String, List<AssignedExpert>>> loaded = loader.loaded;
    final List<String> events = loader.events;
    final Set<String> failing = loader.failing;
    final Set<String> refusing = loader.refusing;
    final Set<String> failingCommit = loader.failingCommit;
    final Set<String> refusingCommit = loader.refusingCommit;
    final Set<String> failingAbort = loader.failingAbort;
    final Map<String, Long> diskEpochAt = loader.diskEpochAt;
    final Map<String, HeldEpochs> held = loader.held;
    final List<List<String>> placedOn = loader.placedOn;
    final List<PlacementCoordinator> coordinators = new ArrayList<>();
    RouteBook book = TestRoutes.book(1000);

    static Instance instance(String id) {
        return Instance.newBuilder().setId(id).setEndpoint("127.0.0.1:1").build();
    }

    PlacementCoordinator coordinator(int replicas, int minRoutes) {
        var settings = new PlacementCoordinator.Settings(INSTANCES, book.shape(), false, replicas,
                PlacementBudget.slots(3, 4), "affinity", minRoutes, Duration.ofSeconds(30));
        PlacementCoordinator c = new PlacementCoordinator(settings, book, loader, new EpochStore(stateDir),
                Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(3), System::nanoTime);
        c.onPublished(o -> events.add("published " + o.placement().getEpoch()));
        coordinators.add(c);
        return c;
    }

    static List<String> each(String call, long epoch, String... ids) {
        return Arrays.stream(ids).map(id -> call + " " + epoch + " " + id).toList();
    }

    @AfterEach
    void close() {
        coordinators.forEach(PlacementCoordinator::close);
    }

    /** Every instance serves {@code p}'s epoch with its share, as DescribeInstance would say after the COMMIT. */
    void servedEverywhere(Placement p) {
        for (Instance in : INSTANCES) {
            held.put(in.getId(), new HeldEpochs(p.getEpoch(), PlacementMessages.assignment(p, in.getId()), 0));
        }
    }
}
