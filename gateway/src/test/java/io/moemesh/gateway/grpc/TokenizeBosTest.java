package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.model.MoeModel;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.TokenizeRequest;
import io.moemesh.proto.gateway.v1.TokenizeResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Tokenize's add_bos as gateway.proto says: unset = the model's rule, false = off, true = on, also for a model whose
 * tokenizer adds no BOS (Qwen2-MoE as published): then config.json's bos_token_id; a model without any BOS token
 * refuses true with INVALID_ARGUMENT naming add_bos.
 */
class TokenizeBosTest {
    @TempDir
    Path dir;

    /**
     * The bundled qwen2moe-tiny (config.json bos_token_id 0) with the published checkpoints' tokenizer_config.json,
     * whose tokenizer adds no BOS; without bos_token_id in config.json too when {@code withoutConfigBos}.
     */
    private MoeModel qwenWithoutPromptBos(boolean withoutConfigBos) throws IOException {
        Path source = TestModels.dir(TestModels.QWEN2_MOE);
        for (String f : new String[] {"tokenizer.json", "model.safetensors"}) {
            Files.copy(source.resolve(f), dir.resolve(f));
        }
        String config = Files.readString(source.resolve("config.json"), StandardCharsets.UTF_8);
        if (withoutConfigBos) {
            String without = config.replace("\"bos_token_id\": 0,", "");
            assertThat(without).isNotEqualTo(config);
            config = without;
        }
        Files.writeString(dir.resolve("config.json"), config, StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": null, \"eos_token\": \"</s>\"}");
        return MoeModel.open(dir);
    }

    /** The ids Tokenize answers, or the status it failed with. */
    private record Answer(List<Integer> ids, Status status) {
    }

    private static Answer tokenize(MoeModel model, TokenizeRequest request) {
        PromptLimits limits = new PromptLimits(512, 511, model.tokenizer().maxInputBytesPerToken(), 16);
        // Tokenize does not generate: no GenerationService behind it.
        GatewayGrpcService service = new GatewayGrpcService(model, Optional.empty(), null, limits,
                new IntakeLimiter(1 << 20, 2), 1 << 20, java.time.Duration.ofSeconds(30));
        CompletableFuture<Answer> answer = new CompletableFuture<>();
        service.tokenize(request, new StreamObserver<>() {
            @Override
            public void onNext(TokenizeResponse r) {
                answer.complete(new Answer(r.getTokenIdsList(), Status.OK));
            }

            @Override
            public void onError(Throwable t) {
                answer.complete(new Answer(List.of(), Status.fromThrowable(t)));
            }

            @Override
            public void onCompleted() {
            }
        });
        return answer.join();
    }

    @Test
    void addBosTrue_aTokenizerAddingNone_prependsConfigsBosTokenId_unsetAndFalseAddNone() throws IOException {
        try (MoeModel model = qwenWithoutPromptBos(false)) {
            List<Integer> text = tokenize(model, TokenizeRequest.newBuilder().setText("hello").build()).ids();
            assertThat(text).isNotEmpty();
            assertThat(text.getFirst()).as("this tokenizer adds no BOS").isNotZero();
            assertThat(tokenize(model, TokenizeRequest.newBuilder().setText("hello").setAddBos(false).build()).ids())
                    .isEqualTo(text);
            Answer forced = tokenize(model, TokenizeRequest.newBuilder().setText("hello").setAddBos(true).build());
            assertThat(forced.status().getCode()).isEqualTo(Status.Code.OK);
            assertThat(forced.ids()).startsWith(0).hasSize(text.size() + 1).endsWith(text.toArray(Integer[]::new));
            // Already first: not twice.
            Answer empty = tokenize(model, TokenizeRequest.newBuilder().setText("").setAddBos(true).build());
            assertThat(empty.ids()).containsExactly(0);
        }
    }

    @Test
    void addBosTrue_aModelWithoutAnyBos_isInvalidArgumentNamingAddBos() throws IOException {
        try (MoeModel model = qwenWithoutPromptBos(true)) {
            Answer forced = tokenize(model, TokenizeRequest.newBuilder().setText("hello").setAddBos(true).build());
            assertThat(forced.status().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(forced.status().getDescription()).contains("add_bos").contains("no BOS token");
            assertThat(tokenize(model, TokenizeRequest.newBuilder().setText("hello").build()).status().getCode())
                    .isEqualTo(Status.Code.OK);
        }
    }

    @Test
    void addBosTrue_aTokenizerThatAddsOne_prependsIt_once() {
        MoeModel model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
        try (model) {
            List<Integer> unset = tokenize(model, TokenizeRequest.newBuilder().setText("hello").build()).ids();
            int bos = model.config().bosTokenId().orElseThrow();
            assertThat(unset).startsWith(bos);
            assertThat(tokenize(model, TokenizeRequest.newBuilder().setText("hello").setAddBos(true).build()).ids())
                    .isEqualTo(unset);
            assertThat(tokenize(model, TokenizeRequest.newBuilder().setText("hello").setAddBos(false).build()).ids())
                    .isEqualTo(unset.subList(1, unset.size()));
        }
    }
}
