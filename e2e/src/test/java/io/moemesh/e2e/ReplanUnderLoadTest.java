package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.moemesh.cli.mesh.GatewayClient;
import io.moemesh.cli.mesh.Generation;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.expert.v1.AssignmentStage;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.LoadAssignmentResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Live re-placement (issue 10): a mesh as {@code moemesh up} starts it (router, three expert-services, the gateway
 * following the router's WatchPlacement and reporting every routed token), golden requests from four clients at
 * once, and {@code moemesh router replan} run again and again with different planners meanwhile. Every replan
 * returns published and applied by the gateway, no request fails, and every request gives the reference engine's
 * ids, routes, tokens and logits, whichever epochs it ran under. Then a replan that one instance refuses to prepare:
 * it is aborted, nothing is published, and the mesh keeps serving the old epoch past the instances' drain grace.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ReplanUnderLoadTest {
    /** Planners in turn; the first replans may still be the even deal if too few routes were reported yet. */
    private static final List<String> PLANNERS = List.of("affinity", "round-robin", "affinity-stats", "affinity");
    private static final int CLIENTS = 4;
    private RunningMesh mesh;

    @BeforeAll
    void startMesh() {
        mesh = TestMeshes.startWithRouter("replan-under-load", TestModels.MIXTRAL, 3, 1, List.of(
                // every routed token reported, and a window small enough that the golden prompts fill it quickly
                "-Dmoemesh.gateway.router.report.sample-rate=1",
                "-Dmoemesh.router.min-routes-to-plan=64",
                // the old epoch's experts go soon after a switch: a request still routed under it would fail
                "-Dmoemesh.expert.drain-grace=2s"));
    }

    @AfterAll
    void stopMesh() {
        if (mesh != null) {
            mesh.close();
        }
    }

    @Test
    @Order(1)
    void replansUnderConcurrentLoad_allApplied_noRequestFails_everyTokenIsTheReference() throws Exception {
        List<GoldenCase> cases = GoldenCase.load(TestModels.MIXTRAL);
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger served = new AtomicInteger();
        List<Throwable> failures = new CopyOnWriteArrayList<>();
        List<String> mismatches = new CopyOnWriteArrayList<>();
        Set<Long> epochsSeen = ConcurrentHashMap.newKeySet();
        ExecutorService clients = Executors.newFixedThreadPool(CLIENTS);
        List<Future<?>> running = new ArrayList<>();
        for (int c = 0; c < CLIENTS; c++) {
            int first = c;
            running.add(clients.submit(() -> {
                try (GatewayClient gateway = new GatewayClient(mesh.gatewayEndpoint(), TestMeshes.CALL_DEADLINE)) {
                    for (int i = first; !stop.get(); i++) {
                        GoldenCase g = cases.get(i % cases.size());
                        try {
                            Generation r = gateway.generate(GoldenAssert.request(g), m -> { });
                            SoftAssertions soft = new SoftAssertions();
                            GoldenAssert.matchesGolden(soft, g, r);
                            if (!soft.errorsCollected().isEmpty()) {
                                mismatches.add(soft.errorsCollected().getFirst().getMessage());
                            }
                            epochsSeen.add(r.trace().getPlacementEpoch());
                            served.incrementAndGet();
                        } catch (RuntimeException e) {
                            failures.add(e);
                        }
                    }
                }
            }));
        }
        List<String> outputs = new ArrayList<>();
        List<Long> replanMillis = new ArrayList<>();
        try {
            // Load first, so the router has routes to plan from.
            org.awaitility.Awaitility.await().atMost(Duration.ofMinutes(2)).until(() -> served.get() >= 2 * CLIENTS);
            long epoch = 1;
            for (String planner : PLANNERS) {
                long t0 = System.nanoTime();
                CliRun run = moemesh("router", "replan", "--planner", planner, "--timeout", "60s");
                replanMillis.add(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0));
                outputs.add(run.out());
                assertThat(run.exit()).as("replan with %s; stdout:%n%s%nstderr:%n%s", planner, run.out(), run.err())
                        .isZero();
                epoch++;
                assertThat(run.out()).startsWith("epoch: " + epoch + System.lineSeparator()).contains("applied: yes");
                assertThat(mesh.placement().getEpoch()).isEqualTo(epoch);
                int before = served.get();
                // some requests under each new epoch before the next switch
                org.awaitility.Awaitility.await().atMost(Duration.ofMinutes(2)).until(() -> served.get() >= before + CLIENTS);
            }
        } finally {
            stop.set(true);
            for (Future<?> f : running) {
                f.get(3, TimeUnit.MINUTES);
            }
            clients.shutdownNow();
        }
        System.err.printf("replan under load: %d requests served, epochs seen %s, replan wall times %s ms%n%s%n",
                served.get(), epochsSeen, replanMillis, String.join("\n", outputs));
        assertThat(failures).as("requests that failed").isEmpty();
        assertThat(mismatches).as("requests whose ids, routes, tokens or logits differ from the reference").isEmpty();
        assertThat(outputs).as("at least one replan planned from the reported routes, not the even deal")
                .anyMatch(o -> !o.contains("planner: even"));
        assertThat(epochsSeen).as("requests ran under several epochs").hasSizeGreaterThanOrEqualTo(3);
    }

    @Test
    @Order(2)
    void replanThatOneInstanceRefuses_isAborted_andTheOldEpochKeepsServingPastTheDrainGrace() {
        long epoch = mesh.placement().getEpoch();
        MeshState.Service refusing = mesh.state().experts().get(1);
        // An epoch far ahead, prepared on one instance: it then refuses to prepare epoch + 1 (older than it holds).
        assertThat(stage(refusing, epoch + 500, AssignmentStage.ASSIGNMENT_STAGE_PREPARE).getPreparedEpoch())
                .isEqualTo(epoch + 500);

        CliRun refused = moemesh("router", "replan", "--timeout", "30s");
        assertThat(refused.exit()).as("stdout:%n%s", refused.out()).isEqualTo(1);
        assertThat(refused.err()).contains(refusing.name());
        assertThat(mesh.placement().getEpoch()).as("nothing published").isEqualTo(epoch);

        // Requests keep coming until well past the drain grace (2 s) of every instance that prepared and aborted:
        // all at the old epoch, all the reference.
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
        int requests = 0;
        try (GatewayClient gateway = new GatewayClient(mesh.gatewayEndpoint(), TestMeshes.CALL_DEADLINE)) {
            SoftAssertions soft = new SoftAssertions();
            List<GoldenCase> cases = GoldenCase.load(TestModels.MIXTRAL);
            while (System.nanoTime() < until || requests < cases.size()) {
                GoldenCase g = cases.get(requests++ % cases.size());
                Generation r = gateway.generate(GoldenAssert.request(g), m -> { });
                GoldenAssert.matchesGolden(soft, g, r);
                soft.assertThat(r.trace().getPlacementEpoch()).isEqualTo(epoch);
            }
            soft.assertAll();
        }

        // Once the stray epoch is aborted, the next replan goes through.
        stage(refusing, epoch + 500, AssignmentStage.ASSIGNMENT_STAGE_ABORT);
        CliRun next = moemesh("router", "replan", "--timeout", "60s");
        assertThat(next.exit()).as("stdout:%n%s%nstderr:%n%s", next.out(), next.err()).isZero();
        assertThat(mesh.placement().getEpoch()).isGreaterThan(epoch);
    }

    /** LoadAssignment with a stage and no experts, as the launcher's placer identity. */
    private LoadAssignmentResponse stage(MeshState.Service s, long epoch, AssignmentStage stage) {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", s.grpcPort(), mesh.placerCredentials()).build();
        try {
            return ExpertServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES)
                    .loadAssignment(LoadAssignmentRequest.newBuilder().setInstanceId(s.name()).setEpoch(epoch)
                            .setStage(stage).build());
        } finally {
            ch.shutdownNow();
        }
    }

    private CliRun moemesh(String... args) {
        return CliRun.on(mesh.stateDir(), args);
    }
}
