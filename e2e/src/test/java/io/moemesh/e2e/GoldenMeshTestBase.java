package io.moemesh.e2e;

import io.moemesh.cli.mesh.GatewayClient;
import io.moemesh.cli.mesh.Generation;
import io.moemesh.cli.mesh.MeshTransport;
import io.moemesh.cli.mesh.RunningMesh;
import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.placement.PlacementTable;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * All golden cases of one model through one mesh of three expert services, under four placements in turn
 * (1, 2 and 3 instances without replicas, 3 instances with every expert on 2): each placement is a new epoch
 * the services load with LoadAssignment and the gateway reads from its placement file. And a long prompt sent twice:
 * the second reuses the first's cached KV blocks (prefix caching) and still gives the reference engine's tokens.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class GoldenMeshTestBase {
    private RunningMesh mesh;
    private GatewayClient gateway;
    private long epoch;

    abstract String model();

    /** How the gateway reaches the instances: TCP, or a Unix domain socket each (one subclass, as `up` runs). */
    MeshTransport transport() {
        return MeshTransport.TCP;
    }

    @BeforeAll
    void startMesh() {
        // The tiny models' golden steps give each expert a few rows, below the gateway's default rows-per-expert floor
        // (micro-batch-min-expert-rows): without lowering it they would not split, and the matrix would not test
        // ping-pong's tokens.
        mesh = TestMeshes.start("golden-" + model(), model(), 3, 1, transport(),
                List.of("-Dmoemesh.gateway.micro-batch-min-expert-rows=0"));
        gateway = new GatewayClient(mesh.gatewayEndpoint(), TestMeshes.CALL_DEADLINE);
        epoch = mesh.state().epoch();
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

    static Stream<Arguments> placements() {
        return Stream.of(Arguments.of(1, 1), Arguments.of(2, 1), Arguments.of(3, 1), Arguments.of(3, 2));
    }

    @ParameterizedTest(name = "{0} instance(s), {1} replica(s)")
    @MethodSource("placements")
    void goldenCases_giveTheReferenceIdsRoutesTokensAndLogits_underEveryPlacement(int instances, int replicas) {
        PlacementTable table = Placements.switchTo(mesh, gateway, ++epoch, instances, replicas);
        String form = transport() == MeshTransport.UNIX ? "unix:///" : "127.0.0.1:";
        assertThat(table.instances()).allSatisfy(in -> assertThat(in.getEndpoint()).startsWith(form));
        var c = mesh.config();
        SoftAssertions soft = new SoftAssertions();
        for (GoldenCase g : GoldenCase.load(model())) {
            Generation r = gateway.generate(GoldenAssert.request(g), m -> { });
            GoldenAssert.matchesGolden(soft, g, r);
            GoldenAssert.dispatchFollows(soft, g, r, table, c.numExperts(), c.hasSharedExpert());
        }
        soft.assertAll();
    }

    /**
     * The gateway's dispatch latency says how each instance is reached, the arena counters whether tensors crossed
     * in shared memory (docs/metrics.md).
     */
    @Test
    void dispatchLatency_isLabelledWithTheInstancesTransport() throws Exception {
        // the series appears with an instance's first call
        gateway.generate(GenerateRequest.newBuilder().setPrompt("transport probe")
                .setSampling(SamplingParams.newBuilder().setMaxTokens(2)).build(), m -> { });
        try (HttpClient http = HttpClient.newHttpClient()) {
            String metrics = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                            + mesh.state().gateway().managementPort() + "/actuator/prometheus"))
                    .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString()).body();
            assertThat(metrics.lines().filter(l -> l.startsWith("moemesh_gateway_dispatch_latency_seconds_count{")))
                    .isNotEmpty()
                    .allSatisfy(l -> assertThat(l).contains("transport=\"" + transport().label() + "\""));
            // On the domain socket the tensors crossed through the shared-memory arenas (every golden case above
            // too, since the gateway offers one by default); over TCP never. No slot is held between requests.
            List<Double> arenaCalls = metrics.lines().filter(l -> l.startsWith("moemesh_gateway_instance_arena_calls_total{"))
                    .map(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).toList();
            assertThat(arenaCalls).isNotEmpty();
            if (transport() == MeshTransport.UNIX) {
                assertThat(arenaCalls.stream().mapToDouble(Double::doubleValue).sum()).isPositive();
            } else {
                assertThat(arenaCalls).containsOnly(0.0);
            }
            assertThat(metrics.lines().filter(l -> l.startsWith("moemesh_gateway_instance_arena_slots_in_use{")))
                    .isNotEmpty().allSatisfy(l -> assertThat(l).endsWith(" 0.0"));
            // Every reply's array went back to the pool once summed (the golden tokens above were computed so).
            assertThat(metrics.lines().filter(l -> l.startsWith("moemesh_hop_tensor_pool_bytes_idle{"))
                    .map(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))).singleElement()
                    .satisfies(bytes -> assertThat(bytes).isPositive());
        }
    }

    /**
     * Every golden case at once: the gateway batches them into shared steps, which ping-pong micro-batches (on by
     * default, {@code moemesh.gateway.micro-batches=2}, with the rows-per-expert floor off for these tiny steps) split in two whose expert
     * calls overlap each other's attention. Each case still gives the reference ids, routes, tokens and logits.
     */
    @Test
    void goldenCasesSentTogether_runAsPingPongMicroBatches_andGiveTheReferenceResults() throws Exception {
        List<GoldenCase> cases = GoldenCase.load(model());
        ExecutorService pool = Executors.newFixedThreadPool(cases.size());
        try {
            List<Future<Generation>> runs = cases.stream()
                    .map(g -> pool.submit(() -> gateway.generate(GoldenAssert.request(g), m -> { }))).toList();
            SoftAssertions soft = new SoftAssertions();
            for (int i = 0; i < cases.size(); i++) {
                GoldenAssert.matchesGolden(soft, cases.get(i), runs.get(i).get());
            }
            soft.assertAll();
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * The golden prompts are shorter than what prefix caching reuses (full 16-token blocks before the last token),
     * so this one has 60 tokens: 48 of them come from the cache the second time.
     */
    @Test
    void aLongPromptSentTwice_reusesItsCachedBlocks_andGivesTheReferenceTokens() {
        SplittableRandom random = new SplittableRandom(60);
        PromptIds.Builder ids = PromptIds.newBuilder();
        for (int i = 0; i < 59; i++) {
            ids.addTokenIds(2 + random.nextInt(mesh.config().vocabSize() - 2)); // the gateway prepends BOS
        }
        GenerateRequest request = GenerateRequest.newBuilder().setPromptIds(ids)
                .setSampling(SamplingParams.newBuilder().setMaxTokens(12)).build();
        AtomicReference<GenerateResponse> last = new AtomicReference<>();
        Generation miss = gateway.generate(request, last::set);
        assertThat(last.get().getUsage().getCachedPromptTokens()).isZero();
        Generation hit = gateway.generate(request, last::set);
        assertThat(last.get().getUsage().getPromptTokens()).isEqualTo(60);
        assertThat(last.get().getUsage().getCachedPromptTokens()).isEqualTo(48);

        int[] reference;
        try (MoeModel m = MoeModel.open(TestModels.dir(model()))) {
            reference = new Generator(m.localEngine(), m.newCache(1024), 512).generate(List.of(new GenerationRequest(
                    hit.inputIds(), io.moemesh.model.generate.SamplingParams.greedy(12), false)), (i, t) -> { })
                    .getFirst().generatedIds();
        }
        assertThat(hit.inputIds()).hasSize(60).containsExactly(miss.inputIds());
        assertThat(hit.generatedIds()).containsExactly(miss.generatedIds()).containsExactly(reference);
    }
}
