package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.cli.mesh.GatewayClient;
import io.moemesh.cli.mesh.Generation;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.cli.mesh.ServiceProcess;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.InstanceDispatch;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Expert-service failures on a mesh of three instances with every expert on two of them (mixtral-tiny): the
 * gateway retries on a surviving replica, fails loudly when none is left, and recovers when one comes back.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ExpertFailoverTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final Duration RESTART_TIMEOUT = Duration.ofMinutes(3);

    private RunningMesh mesh;
    private GatewayClient gateway;

    @BeforeAll
    void startMesh() {
        mesh = TestMeshes.start("failover", MODEL, 3, 2);
        gateway = new GatewayClient(mesh.gatewayEndpoint(), TestMeshes.CALL_DEADLINE);
    }

    @AfterAll
    void stopMesh() {
        if (gateway != null) {
            gateway.close();
        }
        if (mesh != null) {
            mesh.close();
        }
    }

    /** Every test starts with all three instances up (a previous test may have killed some). */
    @BeforeEach
    void restartKilledInstances() {
        List<String> down = mesh.state().experts().stream().filter(s -> s.process().isEmpty())
                .map(MeshState.Service::name).toList();
        if (!down.isEmpty()) {
            mesh.restart(down, RESTART_TIMEOUT);
        }
    }

    @Test
    @Order(1)
    void replicaKilledMidGeneration_requestCompletesWithTheReferenceTokens() {
        GoldenCase g = GoldenCase.load(MODEL).getFirst();
        int maxTokens = 200;
        int[] reference = referenceTokens(g.inputIds(), maxTokens);
        GenerateRequest request = GoldenAssert.request(g).toBuilder().setTrace(false)
                .setSampling(GoldenAssert.request(g).getSampling().toBuilder().setMaxTokens(maxTokens)).build();
        AtomicInteger received = new AtomicInteger();
        AtomicInteger afterKill = new AtomicInteger(-1);
        Generation r = gateway.generate(request, m -> {
            if (afterKill.get() >= 0) {
                afterKill.addAndGet(m.getTokenIdsCount());
            } else if (received.addAndGet(m.getTokenIdsCount()) >= 8) {
                // SIGKILL, as a crash: its open ExpertBatch streams are reset mid-step
                mesh.kill("expert-1");
                afterKill.set(0);
            }
        });
        assertThat(afterKill.get()).as("tokens streamed after expert-1 was killed").isPositive();
        assertThat(mesh.state().service("expert-1").process()).isEmpty();
        assertThat(r.generatedIds()).as("tokens with a replica killed mid-generation").containsExactly(reference);
    }

    @Test
    @Order(2)
    void allReplicasOfAnExpertDown_failsUnavailableNamingIt_gatewayStaysUp_andRecoversAfterARestart() {
        GoldenCase g = GoldenCase.load(MODEL).get(1);
        PlacementTable table = mesh.placementTable();
        // Experts held by exactly {expert-0, expert-1} have no replica left after both die.
        Set<Integer> down = Set.of(table.instanceIndex("expert-0"), table.instanceIndex("expert-1"));
        mesh.kill("expert-0");
        mesh.kill("expert-1");

        StatusRuntimeException e = catchThrowableOfType(StatusRuntimeException.class,
                () -> gateway.generate(GoldenAssert.request(g), m -> { }));
        assertThat(e).as("a request needing an expert with no live replica").isNotNull();
        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        Matcher m = Pattern.compile("layer (\\d+) expert (\\d+)").matcher(String.valueOf(e.getStatus().getDescription()));
        assertThat(m.find()).as("the status names the layer and expert: %s", e.getStatus()).isTrue();
        int[] holders = table.holders()[Integer.parseInt(m.group(1))][Integer.parseInt(m.group(2))];
        assertThat(Arrays.stream(holders).boxed().toList())
                .as("instances of the expert named in: %s", e.getStatus().getDescription()).allMatch(down::contains);

        MeshState.Service gw = mesh.state().gateway();
        assertThat(gw.process()).as("gateway process").isPresent();
        // Health tells the truth: an expert without a live replica makes the gateway not ready (gRPC health
        // mirrors its readiness), and it is ready again once a replica is back.
        await("gateway health NOT_SERVING while an expert has no replica").atMost(Duration.ofSeconds(30))
                .until(() -> !ServiceProcess.serving("127.0.0.1", gw.grpcPort()));

        mesh.restart("expert-0", RESTART_TIMEOUT);
        await("gateway health SERVING again").atMost(Duration.ofSeconds(10))
                .until(() -> ServiceProcess.serving("127.0.0.1", gw.grpcPort()));
        AtomicReference<Generation> after = new AtomicReference<>();
        await("the same request succeeds once expert-0 is back").atMost(Duration.ofSeconds(90))
                .pollInterval(Duration.ofMillis(500)).ignoreExceptions()
                .until(() -> {
                    after.set(gateway.generate(GoldenAssert.request(g), x -> { }));
                    return true;
                });
        SoftAssertions soft = new SoftAssertions();
        GoldenAssert.matchesGolden(soft, g, after.get());
        soft.assertAll();
    }

    /**
     * The replica that failed is used again (the scenario): expert-1 is killed while requests keep coming
     * (its failed calls may open its breaker; its health watch sees it unreachable), restarted, and must carry
     * tokens again within 10 s of reporting SERVING; then the other replica of its experts on expert-0 dies and
     * every request still gets the reference tokens, served by expert-1.
     */
    @Test
    @Order(3)
    void replicaRestartedAfterFailing_carriesTokensAgain_andServesAloneWhenTheOtherReplicaDies() {
        List<GoldenCase> cases = GoldenCase.load(MODEL);
        mesh.kill("expert-1");
        for (GoldenCase g : cases) {
            Generation r = gateway.generate(GoldenAssert.request(g), m -> { });
            assertThat(r.generatedIds()).as("%s with expert-1 down", g).containsExactly(g.greedyIds());
            assertThat(instancesUsed(r)).doesNotContain("expert-1");
        }

        mesh.restart("expert-1", RESTART_TIMEOUT);
        await("expert-1 carries tokens within 10 s of reporting SERVING").atMost(Duration.ofSeconds(10))
                .pollInterval(Duration.ofMillis(200))
                .until(() -> instancesUsed(gateway.generate(GoldenAssert.request(cases.getFirst()), m -> { }))
                        .contains("expert-1"));

        mesh.kill("expert-0");
        for (GoldenCase g : cases) {
            Generation r = gateway.generate(GoldenAssert.request(g), m -> { });
            assertThat(r.generatedIds()).as("%s with expert-0 down after expert-1 came back", g)
                    .containsExactly(g.greedyIds());
            assertThat(instancesUsed(r)).contains("expert-1").doesNotContain("expert-0");
        }
    }

    /** Instances the prompt's tokens went to, over all layers (from the trace). */
    private static Set<String> instancesUsed(Generation g) {
        return g.trace().getDispatchList().stream().flatMap(l -> l.getInstancesList().stream())
                .map(InstanceDispatch::getInstanceId).collect(Collectors.toSet());
    }

    /** Greedy tokens of the single-process reference engine. */
    private static int[] referenceTokens(int[] inputIds, int maxTokens) {
        try (MoeModel m = MoeModel.open(TestModels.dir(MODEL))) {
            Generator gen = new Generator(m.localEngine(), m.newCache(inputIds.length + maxTokens), 512);
            return gen.generate(List.of(new GenerationRequest(inputIds, SamplingParams.greedy(maxTokens), false)),
                    (i, t) -> { }).getFirst().generatedIds();
        }
    }
}
