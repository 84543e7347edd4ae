package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.support.FakeExpertInstance;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The gateway with {@code moemesh.gateway.dispatch.lookahead-prefetch.enabled=true} against a stand-in
 * expert-service on a real socket that fails every Prefetch call: generations stay golden, the hints reach the
 * instance, and the failures, hints and online recall show as metrics.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class LookaheadPrefetchGatewayTest {
    private static final String MODEL = TestModels.QWEN2_MOE;
    private static FakeExpertInstance expert;

    @Autowired
    io.moemesh.service.grpc.GrpcServerLifecycle server;
    @Autowired
    MeterRegistry meters;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        expert = new FakeExpertInstance(TestModels.dir(MODEL));
        expert.prefetchFails.set(true);
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.placement-file", () -> expert.placementFile().toString());
        r.add("moemesh.gateway.tls.mode", () -> "plaintext");
        r.add("moemesh.gateway.dispatch.lookahead-prefetch.enabled", () -> "true");
    }

    @AfterAll
    static void stop() {
        expert.close();
    }

    private double counter(String name) {
        return meters.get(name).functionCounter().count();
    }

    @Test
    void prefetchOn_everyHintFails_generationsStillGolden_andTheMetricsCountIt() {
        ManagedChannel channel = NettyChannelBuilder.forAddress("127.0.0.1", server.port()).usePlaintext().build();
        try {
            for (GoldenCase g : GoldenCase.load(MODEL).subList(0, 1)) {
                List<Integer> ids = new ArrayList<>();
                GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                        .generate(GenerateRequest.newBuilder().setPrompt(g.prompt())
                                .setSampling(SamplingParams.newBuilder().setMaxTokens(16)).build())
                        .forEachRemaining(m -> ids.addAll(m.getTokenIdsList()));
                assertThat(ids.stream().mapToInt(Integer::intValue).toArray()).containsExactly(g.greedyIds());
            }
        } finally {
            channel.shutdownNow();
        }
        assertThat(expert.prefetches).isNotEmpty();
        await().until(() -> counter("moemesh_gateway_prefetch_failed") == counter("moemesh_gateway_prefetch_requests"));
        assertThat(counter("moemesh_gateway_prefetch_requests")).isEqualTo(expert.prefetches.size());
        assertThat(counter("moemesh_gateway_prefetch_hints")).isPositive();
        assertThat(counter("moemesh_gateway_lookahead_hits"))
                .isBetween(0.0, counter("moemesh_gateway_lookahead_true_experts"));
        assertThat(counter("moemesh_gateway_lookahead_true_experts")).isPositive();
        assertThat(counter("moemesh_gateway_prefetch_dropped")).isZero();
    }
}
