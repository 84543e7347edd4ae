package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.moemesh.gateway.http.OpenAiErrors;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.model.MoeModel;
import io.moemesh.model.ModelFormatException;
import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A step whose forward pass fails for no request's fault (here an expert tensor found missing mid-step, as a lazily
 * loaded broken checkpoint did) reaches the clients as the server's failure on both APIs: HTTP 500 server_error and
 * gRPC INTERNAL, saying only "internal error" and the request id (the detail is logged with it). It was a
 * ModelFormatException, an IllegalArgumentException: 400 invalid_request_error / INVALID_ARGUMENT with the path.
 */
class StepFailureStatusTest {
    private static MoeModel model;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @Test
    void brokenExpertTensorMidStep_isAServerError_onBothApis_withoutTheServersPath() {
        String index = "/srv/models/mixtral/model.safetensors.index.json";
        ExpertDispatch broken = (step, layer, x, experts, weights, pairsPerToken, out) -> {
            throw new ModelFormatException(index + ": tensor model.layers.0.block_sparse_moe.experts.3.w2.weight is "
                    + "missing");
        };
        CompletableFuture<Throwable> told = new CompletableFuture<>();
        SequenceListener listener = new SequenceListener() {
            @Override
            public void onToken(int token) {
            }

            @Override
            public void onFinish(GenerationResult result) {
                told.complete(null);
            }

            @Override
            public void onError(Throwable error) {
                told.complete(error);
            }
        };
        StepScheduler scheduler = new StepScheduler(model.engine(broken), model.newCache(64), 16, 1);
        try (EngineLoop loop = new EngineLoop(scheduler, () -> { }, Duration.ofMillis(10))) {
            loop.submit(new GenerationRequest(new int[] {1, 5, 9}, SamplingParams.greedy(4), false), listener, "t");
            Throwable error = told.orTimeout(30, TimeUnit.SECONDS).join();

            Status grpc = GatewayStatus.of(error, "req-9");
            assertThat(grpc.getCode()).isEqualTo(Status.Code.INTERNAL);
            assertThat(grpc.getDescription()).isEqualTo("internal error; request id req-9");

            var http = OpenAiErrors.of(error, "req-9");
            assertThat(http.getStatusCode().value()).isEqualTo(500);
            @SuppressWarnings("unchecked")
            Map<String, Object> body = (Map<String, Object>) http.getBody().get("error");
            assertThat(body).containsEntry("type", "server_error")
                    .containsEntry("message", "internal error; request id req-9");
            assertThat(http.getBody().toString()).doesNotContain("/srv/models", "experts.3");
        }
    }
}
