package io.moemesh.cli.bench.serve;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.gateway.v1.FinishReason;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.ModelInfoRequest;
import io.moemesh.proto.gateway.v1.ModelInfoResponse;
import io.moemesh.proto.gateway.v1.Usage;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/** {@code bench serve --backend grpc} against a fake moemesh.gateway.v1 service on a loopback port. */
class GrpcBackendTest {

    static final class FakeGateway extends GatewayServiceGrpc.GatewayServiceImplBase {
        final List<GenerateRequest> requests = new CopyOnWriteArrayList<>();

        @Override
        public void modelInfo(ModelInfoRequest request, StreamObserver<ModelInfoResponse> out) {
            out.onNext(ModelInfoResponse.newBuilder().setModel("fake").setMaxPositionEmbeddings(128).setVocabSize(64)
                    .setBosTokenId(0).addEosTokenIds(1).build());
            out.onCompleted();
        }

        @Override
        public void generate(GenerateRequest request, StreamObserver<GenerateResponse> out) {
            requests.add(request);
            int prompt = request.getPromptIds().getTokenIdsCount();
            out.onNext(GenerateResponse.newBuilder().setRequestId("r").setPromptTokens(prompt).build());
            int n = request.getSampling().getMaxTokens();
            for (int i = 0; i < n; i += 2) { // two tokens per message but the last
                GenerateResponse.Builder b = GenerateResponse.newBuilder().addTokenIds(5).setText("a");
                if (i + 1 < n) {
                    b.addTokenIds(6);
                }
                out.onNext(b.build());
            }
            out.onNext(GenerateResponse.newBuilder().setFinishReason(FinishReason.FINISH_REASON_LENGTH)
                    .setUsage(Usage.newBuilder().setPromptTokens(prompt).setCompletionTokens(n)).build());
            out.onCompleted();
        }
    }

    @Test
    void promptIdsAreExactAndClipped_usageCountsTokens_chunksAreMessagesWithTokens() throws Exception {
        FakeGateway fake = new FakeGateway();
        Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(fake).build()
                .start();
        try {
            BenchServeEndToEndTest.Run run = BenchServeEndToEndTest.bench("--endpoint", "127.0.0.1:" + server.getPort(),
                    "--backend", "grpc", "--random-input", "200", "--random-output", "7", "--num-prompts", "5");

            assertThat(run.exitCode()).as(run.err()).isZero();
            String t = run.out();
            assertThat(BenchServeEndToEndTest.row(t, "Successful requests:")).isEqualTo("5");
            // 200 + 7 > 128: the prompt keeps 121 ids (BOS first), the completion its 7 tokens.
            assertThat(BenchServeEndToEndTest.row(t, "Clipped requests (context 128):")).isEqualTo("5");
            assertThat(BenchServeEndToEndTest.row(t, "Total input tokens:")).isEqualTo("605");
            assertThat(BenchServeEndToEndTest.row(t, "Total generated tokens:")).isEqualTo("35");
            assertThat(fake.requests.subList(1, 6)).allSatisfy(r -> {
                assertThat(r.getModel()).isEqualTo("fake");
                assertThat(r.getSampling().getIgnoreEos()).isTrue();
                assertThat(r.getSampling().getMaxTokens()).isEqualTo(7);
                List<Integer> ids = r.getPromptIds().getTokenIdsList();
                assertThat(ids).hasSize(121).startsWith(0);
                assertThat(ids.subList(1, ids.size())).allSatisfy(id -> assertThat(id).isBetween(2, 63));
            });
        } finally {
            server.shutdownNow().awaitTermination();
        }
    }

    @Test
    void compareEngine_runsTheReferenceEngineInProcess_thenTheSameShapesThroughTheGateway() throws Exception {
        FakeGateway fake = new FakeGateway();
        Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(fake).build()
                .start();
        java.nio.file.Path json = java.nio.file.Files.createTempDirectory("bench").resolve("compare.json");
        try {
            BenchServeEndToEndTest.Run run = BenchServeEndToEndTest.bench("--endpoint", "127.0.0.1:" + server.getPort(),
                    "--backend", "grpc", "--compare-engine", "--model-dir",
                    io.moemesh.model.golden.TestModels.dir(io.moemesh.model.golden.TestModels.MIXTRAL).toString(),
                    "--compare-streams", "4", "--compare-input-len", "12", "--compare-output-len", "6",
                    "--warmup-tokens", "2", "--compare-rounds", "2", "--json", json.toString());

            assertThat(run.exitCode()).as(run.err()).isZero();
            assertThat(run.out()).contains("Gateway vs reference engine")
                    .contains("4 sequences, 12-token prompts, 6 output tokens");
            assertThat(BenchServeEndToEndTest.row(run.out(), "Successful requests:")).isEqualTo("4");
            assertThat(BenchServeEndToEndTest.row(run.out(), "Total generated tokens:")).isEqualTo("24");
            // Warm-up (4 × 2 tokens) then two measured rounds (4 × 6 each), all with the same 12-id prompts.
            assertThat(fake.requests).hasSize(12).allSatisfy(r -> assertThat(r.getPromptIds().getTokenIdsList())
                    .hasSize(12).startsWith(0));
            assertThat(fake.requests.subList(4, 12)).allSatisfy(r -> assertThat(r.getSampling().getMaxTokens())
                    .isEqualTo(6));
            var c = tools.jackson.databind.json.JsonMapper.builder().build().readTree(json.toFile()).path("comparison");
            assertThat(c.path("engine_decode_tokens_per_s").asDouble()).isPositive();
            assertThat(c.path("gateway_decode_tokens_per_s").asDouble()).isPositive();
            assertThat(c.path("decode_ratio").asDouble()).isPositive();
            assertThat(c.path("engine").path("completed").asInt()).isEqualTo(4);
            assertThat(c.path("rounds")).hasSize(2);
            assertThat(run.out()).contains("Decode ratio per round:");
            assertThat(c.path("engine").path("total_output_tokens").asInt()).isEqualTo(24);
        } finally {
            server.shutdownNow().awaitTermination();
        }
    }

    /** gateway.proto: a failure after tokens is a final message with FINISH_REASON_ERROR; the call itself is OK. */
    @Test
    void finishReasonErrorAfterTokens_countsAsAFailedRequest_namingTheStatus() throws Exception {
        GatewayServiceGrpc.GatewayServiceImplBase failing = new GatewayServiceGrpc.GatewayServiceImplBase() {
            @Override
            public void generate(GenerateRequest request, StreamObserver<GenerateResponse> out) {
                out.onNext(GenerateResponse.newBuilder().setRequestId("r").setPromptTokens(3).build());
                out.onNext(GenerateResponse.newBuilder().addTokenIds(5).setText("a").build());
                out.onNext(GenerateResponse.newBuilder().setFinishReason(FinishReason.FINISH_REASON_ERROR)
                        .setError(com.google.rpc.Status.newBuilder().setCode(io.grpc.Status.Code.UNAVAILABLE.value())
                                .setMessage("layer 1 expert 3 has no healthy replica"))
                        .setUsage(Usage.newBuilder().setPromptTokens(3).setCompletionTokens(1)).build());
                out.onCompleted();
            }
        };
        Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0)).addService(failing).build()
                .start();
        try (GrpcBackend backend = new GrpcBackend(Endpoint.parse("127.0.0.1:" + server.getPort()), null)) {
            RequestOutcome r = backend.send(new StreamingBackend.RequestSpec("fake", 0, true),
                    new BenchPrompt(null, new int[] {0, 5, 6}, 3, 4, false));
            assertThat(r.success()).isFalse();
            assertThat(r.error()).contains("FINISH_REASON_ERROR").contains("no healthy replica");
        } finally {
            server.shutdownNow().awaitTermination();
        }
    }
}
