package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.moemesh.expert.support.BatchClient;
import io.moemesh.expert.support.Requests;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.TestSteps;
import io.moemesh.model.safetensors.TensorStore;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.DescribeInstanceResponse;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.PrefetchRequest;
import io.moemesh.proto.expert.v1.PrefetchResponse;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;

class ExpertServiceSocketTest extends PlacedInstanceTestBase {
    @Autowired
    private PrometheusConfig prometheusConfig;

    private TensorStore store;
    private LocalExperts reference;

    @BeforeAll
    void openReference() {
        store = TensorStore.open(MODEL);
        reference = LocalExperts.fromStore(store, CONFIG);
    }

    @AfterAll
    void closeReference() {
        store.close();
    }

    /** A batch routed only to experts expert-0 holds: top-3 of its routed experts plus, where held, the shared one. */
    private record Case(ExpertBatchRequest request, float[] expected, int tokens) {
    }

    private Case heldCase(int layer, int tokens, long seed) {
        Random r = new Random(seed);
        List<Integer> routed = new ArrayList<>();
        for (int e = 0; e < CONFIG.numExperts(); e++) {
            if (held(layer, e)) {
                routed.add(e);
            }
        }
        boolean shared = held(layer, CONFIG.numExperts());
        int p = CONFIG.topK() + (shared ? 1 : 0);
        float[] x = new float[tokens * H];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        int[] experts = new int[tokens * p];
        float[] weights = new float[tokens * p];
        ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setBatchId(Requests.nextId())
                .setPlacementEpoch(EPOCH).setLayer(layer)
                .setActivations(io.moemesh.service.grpc.TensorCodec.encode(x, 0, tokens, H));
        for (int t = 0; t < tokens; t++) {
            java.util.Collections.shuffle(routed, r);
            b.addTokenExpertCounts(p);
            for (int j = 0; j < p; j++) {
                experts[t * p + j] = j < CONFIG.topK() ? routed.get(j) : CONFIG.numExperts();
                weights[t * p + j] = 0.05f + r.nextFloat();
                b.addExperts(experts[t * p + j]).addWeights(weights[t * p + j]);
            }
        }
        float[] expected = new float[tokens * H];
        reference.run(TestSteps.rows(tokens), layer, x, experts, weights, p, expected);
        return new Case(b.build(), expected, tokens);
    }

    private static void assertClose(float[] got, float[] want) {
        assertThat(got).hasSameSizeAs(want);
        for (int i = 0; i < want.length; i++) {
            assertThat(got[i]).as("element %d", i).isCloseTo(want[i], within(1e-5f + Math.abs(want[i]) * 1e-5f));
        }
    }

    @Test
    void expertBatch_heldExperts_returnWeightedSumOfFfnPerToken_likeTheReferenceEngine_includingSharedExpert() {
        try (BatchClient stream = new BatchClient(channel)) {
            for (int layer = 0; layer < CONFIG.numLayers(); layer++) {
                Case c = heldCase(layer, 5, layer);
                ExpertBatchResponse r = stream.call(c.request());
                assertThat(r.getStatus().getCode()).as(r.getStatus().getMessage()).isZero();
                assertThat(r.getBatchId()).isEqualTo(c.request().getBatchId());
                assertThat(r.getLayer()).isEqualTo(layer);
                assertThat(r.getServingEpoch()).isEqualTo(EPOCH);
                assertThat(r.getOutputs().getDtype()).isEqualTo(DType.DTYPE_F32);
                assertClose(Requests.outputs(r, 5, H), c.expected());
            }
        }
    }

    @Test
    void expertBatch_manyMessagesInFlight_eachAnsweredOnceByBatchId_withItsOwnResult() throws Exception {
        try (BatchClient stream = new BatchClient(channel)) {
            List<Case> cases = new ArrayList<>();
            List<CompletableFuture<ExpertBatchResponse>> replies = new ArrayList<>();
            for (int i = 0; i < 60; i++) {
                Case c = heldCase(i % CONFIG.numLayers(), 1 + i % 17, 100 + i);
                cases.add(c);
                replies.add(stream.send(c.request()));
            }
            for (int i = 0; i < cases.size(); i++) {
                ExpertBatchResponse r = replies.get(i).get(30, TimeUnit.SECONDS);
                assertThat(r.getStatus().getCode()).as(r.getStatus().getMessage()).isZero();
                assertClose(Requests.outputs(r, cases.get(i).tokens(), H), cases.get(i).expected());
            }
            assertThat(stream.finish(Duration.ofSeconds(10))).as("server completes a half-closed stream").isNull();
        }
    }

    @Test
    void expertBatch_bf16OutputOption_isTheF32ResultRoundedToBf16() {
        try (BatchClient stream = new BatchClient(channel)) {
            Case c = heldCase(2, 3, 9);
            ExpertBatchResponse r = stream.call(c.request().toBuilder().setOutputDtype(DType.DTYPE_BF16).build());
            assertThat(r.getOutputs().getDtype()).isEqualTo(DType.DTYPE_BF16);
            assertThat(r.getOutputs().getData().size()).isEqualTo(3 * H * 2);
            float[] got = Requests.outputs(r, 3, H);
            for (int i = 0; i < got.length; i++) {
                assertThat(got[i]).isCloseTo(c.expected()[i], within(Math.abs(c.expected()[i]) / 128 + 1e-6f));
            }
        }
    }

    @Test
    void describeInstance_reportsIdentityBudgetEpochExpertsAndModel() {
        DescribeInstanceResponse d = ExpertServiceGrpc.newBlockingStub(channel)
                .describeInstance(DescribeInstanceRequest.getDefaultInstance());
        assertThat(d.getInstanceId()).isEqualTo("expert-0");
        assertThat(d.getDeviceSlot()).isEqualTo(1);
        assertThat(d.getMemoryBudgetBytes()).isEqualTo(200_000);
        assertThat(d.getResidentBytes()).isPositive().isLessThanOrEqualTo(200_000);
        assertThat(d.getEpoch()).isEqualTo(EPOCH);
        assertThat(d.getBackend()).isEqualTo("cpu");
        assertThat(d.getModel()).isEqualTo("qwen2moe-tiny");
        assertThat(d.getAssignedExpertsList()).hasSize(CONFIG.numLayers() * (CONFIG.numExperts() + 1) / 2)
                .allMatch(ref -> held(ref.getLayer(), ref.getExpert()))
                .isSortedAccordingTo(java.util.Comparator.comparingInt(ExpertRef::getLayer)
                        .thenComparingInt(ExpertRef::getExpert));
        assertThat(d.getResidentExpertsList()).isNotEmpty().isSubsetOf(d.getAssignedExpertsList());
        assertThat(d.getLoad().getInFlightBatches()).isZero();
    }

    @Test
    void describeInstance_load_countsOpenStreamsAndTokensPerSecond() {
        ExpertServiceGrpc.ExpertServiceBlockingStub stub = ExpertServiceGrpc.newBlockingStub(channel);
        try (BatchClient stream = new BatchClient(channel)) {
            assertThat(stream.call(heldCase(1, 30, 5).request()).getStatus().getCode()).isZero();
            DescribeInstanceResponse d = stub.describeInstance(DescribeInstanceRequest.getDefaultInstance());
            assertThat(d.getLoad().getOpenStreams()).isGreaterThanOrEqualTo(1);
            assertThat(d.getLoad().getTokensPerSecond()).isGreaterThanOrEqualTo(30 / 60.0);
        }
    }

    @Test
    void prefetch_loadsAssignedExpertsAhead_andCountsResidentAndIgnoredHints() {
        ExpertServiceGrpc.ExpertServiceBlockingStub stub = ExpertServiceGrpc.newBlockingStub(channel);
        DescribeInstanceResponse d = stub.describeInstance(DescribeInstanceRequest.getDefaultInstance());
        ExpertRef resident = d.getResidentExperts(0);
        ExpertRef notResident = d.getAssignedExpertsList().stream()
                .filter(a -> !d.getResidentExpertsList().contains(a)).findFirst().orElseThrow();
        ExpertRef notAssigned = ExpertRef.newBuilder().setLayer(0).setExpert(1).build();
        ExpertRef unknown = ExpertRef.newBuilder().setLayer(0).setExpert(99).build();
        PrefetchResponse r = stub.prefetch(PrefetchRequest.newBuilder().setPlacementEpoch(EPOCH)
                // The resident hint first: the queued load may evict it (LRU) once it runs.
                .addExperts(resident).addExperts(notResident).addExperts(notAssigned).addExperts(unknown).build());
        assertThat(r.getQueued()).isEqualTo(1);
        assertThat(r.getAlreadyResident()).isEqualTo(1);
        assertThat(r.getIgnored()).isEqualTo(2);
        await().atMost(Duration.ofSeconds(10)).until(() -> stub.describeInstance(DescribeInstanceRequest.getDefaultInstance())
                .getResidentExpertsList().contains(notResident));
        PrefetchResponse stale = stub.prefetch(PrefetchRequest.newBuilder().setPlacementEpoch(EPOCH - 1)
                .addExperts(notResident).build());
        assertThat(stale.getIgnored()).isEqualTo(1);
    }

    @Test
    void health_isServing_forTheServerAndTheExpertService() {
        HealthGrpc.HealthBlockingStub health = HealthGrpc.newBlockingStub(channel);
        assertThat(health.check(HealthCheckRequest.getDefaultInstance()).getStatus())
                .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
        assertThat(health.check(HealthCheckRequest.newBuilder().setService(ExpertServiceGrpc.SERVICE_NAME).build())
                .getStatus()).isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
    }

    @Test
    void actuatorPrometheus_onTheManagementPort_exposesTheExpertMetrics_exemplarsEveryTwoSeconds() throws Exception {
        try (BatchClient stream = new BatchClient(channel)) {
            stream.call(heldCase(0, 4, 1).request());
            stream.call(Requests.single(0, 1, EPOCH, H).build()); // not held: an error by code
        }
        try (HttpClient http = HttpClient.newHttpClient()) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + managementPort + "/actuator/prometheus")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertThat(r.statusCode()).isEqualTo(200);
            assertThat(http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + "/actuator/prometheus"))
                    .build(), HttpResponse.BodyHandlers.discarding()).statusCode()).as("not on server.port").isEqualTo(404);
            assertThat(r.body()).contains("moemesh_expert_batch_tokens_count", "moemesh_expert_compute_seconds_bucket{layer=\"0\"",
                    "moemesh_expert_queue_seconds", "moemesh_expert_resident_hits_total", "moemesh_expert_resident_misses_total",
                    "moemesh_expert_prefetch_loads_total", "moemesh_expert_prefetch_hits_total",
                    "moemesh_expert_prefetch_wasted_total",
                    "moemesh_expert_resident_bytes", "moemesh_expert_budget_bytes 200000.0",
                    "moemesh_expert_errors_total{code=\"FAILED_PRECONDITION\"}", "moemesh_expert_epoch 3.0",
                    "moemesh_expert_prepared_epoch 0.0",
                    "moemesh_expert_open_streams", "moemesh_expert_inflight_batches", "moemesh_expert_tokens_per_second");
        }
        // application.yaml's exemplar rate reaches the Prometheus client: one candidate per series every 2 s.
        assertThat(prometheusConfig.prometheusProperties()).as("exemplar sample interval")
                .containsEntry("io.prometheus.exemplars.sampleIntervalMilliseconds", "2000");
    }
}
