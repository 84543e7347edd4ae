package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.moemesh.gateway.http.OpenAiErrors;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.model.MoeModel;
import io.moemesh.model.ModelFormatException;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A step whose forward pass fails for no request's fault (here an expert tensor found missing mid-step, as a lazily
 * loaded broken checkpoint did, or logits made NaN) reaches the clients as the server's failure on both APIs: HTTP 500
 * server_error and gRPC INTERNAL, saying only "internal error" and the request id (the detail is logged with it). It
 * was a ModelFormatException, an IllegalArgumentException: 400 invalid_request_error / INVALID_ARGUMENT with the path;
 * and the sampler's IllegalStateException for NaN logits: FAILED_PRECONDITION over gRPC.
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
        Throwable error = told(broken, SamplingParams.greedy(4));
        assertServerError(error);
        assertThat(OpenAiErrors.of(error, "req-9").getBody().toString()).doesNotContain("/srv/models", "experts.3");
    }

    /**
     * Logits the engine made NaN (here the last layer's expert output, as a broken kernel or replica would) are the
     * server's failure too, greedy or sampled: the sampler refuses them with an IllegalStateException, which went out
     * as FAILED_PRECONDITION (unlogged), a status this API keeps for chat input without a template.
     */
    @ParameterizedTest(name = "greedy={0}")
    @ValueSource(booleans = {true, false})
    void nonFiniteLogits_areAServerError_onBothApis_notAFailedPrecondition(boolean greedy) {
        ModelConfig c = model.config();
        LocalExperts local = LocalExperts.fromStore(model.tensors(), c);
        ExpertDispatch poisoning = (step, layer, x, experts, weights, pairsPerToken, out) -> {
            local.run(step, layer, x, experts, weights, pairsPerToken, out);
            if (layer == c.numLayers() - 1) {
                Arrays.fill(out, Float.NaN);
            }
        };
        Throwable error = told(poisoning, greedy ? SamplingParams.greedy(4)
                : new SamplingParams(0.8, 0.9, 0, OptionalLong.of(3), 4, false));
        assertThat(error).hasMessageContaining("not finite");
        assertServerError(error);
    }

    /** HTTP 500 server_error and gRPC INTERNAL, both saying only "internal error" and the request id. */
    private static void assertServerError(Throwable error) {
        Status grpc = GatewayStatus.of(error, "req-9");
        assertThat(grpc.getCode()).isEqualTo(Status.Code.INTERNAL);
        assertThat(grpc.getDescription()).isEqualTo("internal error; request id req-9");

        var http = OpenAiErrors.of(error, "req-9");
        assertThat(http.getStatusCode().value()).isEqualTo(500);
        @SuppressWarnings("unchecked")
        Map<String, Object> body = (Map<String, Object>) http.getBody().get("error");
        assertThat(body).containsEntry("type", "server_error")
                .containsEntry("message", "internal error; request id req-9");
    }

    /** What the one sequence of a prompt run with {@code experts} on an engine loop was told at its end. */
    private static Throwable told(ExpertDispatch experts, SamplingParams params) {
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
        StepScheduler scheduler = new StepScheduler(model.engine(experts), model.newCache(64), 16, 1);
        try (EngineLoop loop = new EngineLoop(scheduler, () -> { }, Duration.ofMillis(10))) {
            loop.submit(new GenerationRequest(new int[] {1, 5, 9}, params, false), listener, "t");
            Throwable error = told.orTimeout(30, TimeUnit.SECONDS).join();
            assertThat(error).as("the sequence failed").isNotNull();
            return error;
        }
    }
}
