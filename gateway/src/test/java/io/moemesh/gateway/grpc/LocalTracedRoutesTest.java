package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.dispatch.TracedLocalExperts;
import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.InstanceDispatch;
import io.moemesh.proto.gateway.v1.LayerDispatch;
import io.moemesh.proto.gateway.v1.LayerRoutes;
import io.moemesh.proto.gateway.v1.PositionRoutes;
import io.moemesh.proto.gateway.v1.PromptIds;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.gateway.v1.TraceInfo;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * A traced request to a gateway without expert-services (Mixtral, experts in-process, prompts chunked by a
 * step token budget of 7): its routes carry the combine weights the reference engine applies (Mixtral
 * renormalises the top-k, so they sum to 1), and its dispatch is the one instance {@code local}, which got
 * every prompt row at every layer under epoch 0.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class LocalTracedRoutesTest {

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(TestModels.MIXTRAL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.step-token-budget", () -> "7");
    }

    @Autowired
    GrpcServerLifecycle server;
    @Autowired
    MoeModel model;
    @Autowired
    DispatchTraces traces;

    private ManagedChannel channel;
    private GatewayServiceGrpc.GatewayServiceBlockingStub stub;

    @BeforeAll
    void connect() {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        stub = GatewayServiceGrpc.newBlockingStub(channel);
    }

    @AfterAll
    void disconnect() {
        channel.shutdownNow();
    }

    private TraceInfo tracedGeneration(int promptLength) {
        Random r = new Random(promptLength);
        int[] ids = IntStream.range(0, promptLength).map(i -> 10 + r.nextInt(model.config().vocabSize() - 10)).toArray();
        List<GenerateResponse> msgs = new ArrayList<>();
        stub.generate(GenerateRequest.newBuilder().setTrace(true)
                .setPromptIds(PromptIds.newBuilder().addAllTokenIds(IntStream.of(ids).boxed().toList()))
                .setSampling(SamplingParams.newBuilder().setMaxTokens(2).setIgnoreEos(true)).build())
                .forEachRemaining(msgs::add);
        return msgs.getLast().getTrace();
    }

    @Test
    void routeWeights_areTheReferenceEnginesRenormalisedTopKWeights() {
        TraceInfo t = tracedGeneration(19);
        int[] inputIds = t.getInputIdsList().stream().mapToInt(Integer::intValue).toArray();
        StepOutput ref = model.localEngine().step(List.of(new SequenceStep(1, inputIds, 0, SequenceStep.Logits.LAST,
                true)), model.newCache(64)).getFirst();
        int k = model.config().topK();
        assertThat(t.getRouterTopkCount()).isEqualTo(model.config().numLayers());
        for (LayerRoutes lr : t.getRouterTopkList()) {
            assertThat(lr.getPositionsCount()).isEqualTo(inputIds.length);
            for (int p = 0; p < inputIds.length; p++) {
                PositionRoutes pr = lr.getPositions(p);
                assertThat(pr.getExpertsList()).containsExactly(IntStream.of(ref.routes()[lr.getLayer()][p]).boxed()
                        .toArray(Integer[]::new));
                assertThat(pr.getWeightsCount()).isEqualTo(k);
                float sum = 0;
                for (int j = 0; j < k; j++) {
                    assertThat(pr.getWeights(j)).isCloseTo(ref.routeWeights()[lr.getLayer()][p][j], within(1e-5f));
                    sum += pr.getWeights(j);
                }
                assertThat(sum).as("Mixtral renormalises its top-k").isCloseTo(1f, within(1e-5f));
            }
        }
    }

    @Test
    void dispatch_withExpertsInTheGateway_isEveryPromptRowOnInstanceLocal() {
        TraceInfo t = tracedGeneration(23);
        assertThat(t.getPlacementEpoch()).isZero();
        List<LayerDispatch> expected = new ArrayList<>();
        for (LayerRoutes lr : t.getRouterTopkList()) {
            TreeSet<Integer> experts = new TreeSet<>();
            lr.getPositionsList().forEach(p -> experts.addAll(p.getExpertsList()));
            expected.add(LayerDispatch.newBuilder().setLayer(lr.getLayer()).addInstances(InstanceDispatch.newBuilder()
                    .setInstanceId(TracedLocalExperts.INSTANCE_ID).setTokenCount(t.getInputIdsCount())
                    .addAllExperts(experts)).build());
        }
        assertThat(t.getDispatchList()).isEqualTo(expected);
        assertThat(traces.held()).isZero();
    }
}
