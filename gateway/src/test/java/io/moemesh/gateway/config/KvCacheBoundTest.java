package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.GatewayApplication;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * A paged KV cache smaller than the model's context (64 positions against mixtral-tiny's 512) bounds what the
 * gateway serves, as vLLM's max_model_len: a prompt that cannot fit is refused naming the bound, and a completion
 * that reaches it ends with LENGTH, instead of the sequence being preempted and recomputed without end.
 */
class KvCacheBoundTest {
    private static ConfigurableApplicationContext ctx;
    private static ManagedChannel channel;

    @BeforeAll
    static void start() {
        ctx = SpringApplication.run(GatewayApplication.class,
                "--moemesh.gateway.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=64");
        channel = NettyChannelBuilder.forAddress("127.0.0.1", ctx.getBean(GrpcServerLifecycle.class).port())
                .usePlaintext().build();
    }

    @AfterAll
    static void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        ctx.close();
    }

    @Test
    void completionReachingTheCachesPositions_endsWithLength_thereWithAllItsTokens() {
        List<GenerateResponse> replies = new ArrayList<>();
        GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(GenerateRequest.newBuilder().setPrompt("Mixture of experts")
                        .setSampling(SamplingParams.newBuilder().setMaxTokens(64).setIgnoreEos(true)).build())
                .forEachRemaining(replies::add);

        GenerateResponse last = replies.getLast();
        int generated = replies.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum();
        assertThat(last.getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_LENGTH);
        assertThat(last.getUsage().getPromptTokens() + generated).isEqualTo(64);
        assertThat(last.getUsage().getCompletionTokens()).isEqualTo(generated);
    }

    @Test
    void completionWithoutMaxTokens_runsToTheCachesPositions() {
        List<GenerateResponse> replies = new ArrayList<>();
        GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(GenerateRequest.newBuilder().setPrompt("Mixture of experts")
                        .setSampling(SamplingParams.newBuilder().setIgnoreEos(true)).build())
                .forEachRemaining(replies::add);

        GenerateResponse last = replies.getLast();
        assertThat(last.getFinishReason()).isEqualTo(FinishReason.FINISH_REASON_LENGTH);
        assertThat(last.getUsage().getPromptTokens() + last.getUsage().getCompletionTokens()).isEqualTo(64);
    }

    @Test
    void openAiModels_reportTheBoundAsMaxModelLen() throws Exception {
        String port = ctx.getEnvironment().getProperty("local.server.port");
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + port + "/v1/models")).build(), HttpResponse.BodyHandlers.ofString());

        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.body()).contains("\"max_model_len\":64");
    }

    @Test
    void grpcModelInfo_reportsTheBoundAsMaxPositionEmbeddings_andAnUnknownModelIsNotFound() {
        var stub = GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
        assertThat(stub.modelInfo(ModelInfoRequest.getDefaultInstance()).getMaxPositionEmbeddings()).isEqualTo(64);
        assertThatThrownBy(() -> stub.modelInfo(ModelInfoRequest.newBuilder().setModel("llama-70b").build()))
                .isInstanceOfSatisfying(StatusRuntimeException.class,
                        e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND));
    }

    @Test
    void promptThatFillsTheCache_refusedInvalidArgument_namingTheBound() {
        assertThatThrownBy(() -> GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(GenerateRequest.newBuilder().setPrompt("one two three four five six seven eight ".repeat(10))
                        .setSampling(SamplingParams.newBuilder().setMaxTokens(4)).build())
                .forEachRemaining(r -> { }))
                .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(e.getStatus().getDescription()).contains("maximum context length is 64 tokens");
                });
    }
}
