package io.moemesh.gateway.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.model.MoeModel;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.ChatInput;
import io.moemesh.proto.gateway.v1.ChatMessage;
import io.moemesh.proto.gateway.v1.TokenizeRequest;
import io.moemesh.proto.gateway.v1.TokenizeResponse;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Chat input the template cannot render, by whose fault: the template refusing the conversation
 * ({@code raise_exception}) is INVALID_ARGUMENT with its message, as transformers raises it; the template failing on
 * its own whatever the conversation is INTERNAL ("internal error" and the request id; the details are logged), not
 * an INVALID_ARGUMENT blaming the client.
 */
class ChatTemplateStatusTest {
    private static final ChatTemplate TEMPLATE = ChatTemplate.of("{% if messages[0].role == 'assistant' %}"
            + "{{ raise_exception('Conversation must start with a user message') }}{% endif %}"
            + "{% if messages[0].content == 'break the template' %}{% for m in messages %}{{ loop['previtem'] }}"
            + "{% endfor %}{% endif %}{% if messages[0].content == 'subtract' %}{{ messages[0].content - 1 }}"
            + "{% endif %}{% if messages[0].content == 'repeat' %}{{ messages[0].content * 1000000 }}{% endif %}"
            + "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}", Map.of());

    private static Status tokenize(MoeModel model, String role, String content) {
        PromptLimits limits = new PromptLimits(512, 511, model.tokenizer().maxInputBytesPerToken(), 16);
        // Tokenize renders chat input as Generate does (PromptBuilder) and generates nothing: no GenerationService.
        GatewayGrpcService service = new GatewayGrpcService(model, Optional.of(TEMPLATE), null, limits,
                new IntakeLimiter(1 << 20, 2), 1 << 20, Duration.ofSeconds(30));
        CompletableFuture<Status> status = new CompletableFuture<>();
        service.tokenize(TokenizeRequest.newBuilder().setChat(ChatInput.newBuilder().addMessages(
                ChatMessage.newBuilder().setRole(role).setContent(content))).build(), new StreamObserver<>() {
                    @Override
                    public void onNext(TokenizeResponse r) {
                    }

                    @Override
                    public void onError(Throwable t) {
                        status.complete(Status.fromThrowable(t));
                    }

                    @Override
                    public void onCompleted() {
                        status.complete(Status.OK);
                    }
                });
        return status.join();
    }

    @Test
    void templateRefusingTheConversation_isInvalidArgument_whileTemplateFailingOnItsOwn_isInternal() {
        try (MoeModel model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL))) {
            assertThat(tokenize(model, "user", "hello").getCode()).isEqualTo(Status.Code.OK);

            Status refused = tokenize(model, "assistant", "hello");
            assertThat(refused.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(refused.getDescription())
                    .isEqualTo("TemplateError: Conversation must start with a user message");

            Status broken = tokenize(model, "user", "break the template");
            assertThat(broken.getCode()).isEqualTo(Status.Code.INTERNAL);
            assertThat(broken.getDescription()).isEqualTo("internal error in Tokenize; the gateway's log has the details");
        }
    }

    /**
     * Python failing on the conversation's values is the conversation's fault (it was INTERNAL: JUEL's coercion
     * error looked like the template's), and a chat the template would render past the prompt's byte budget is a
     * prompt too long, refused before the text is built (6 MB here) and naming chat.
     */
    @Test
    void pythonErrorOnTheConversation_andARenderPastThePromptBudget_areInvalidArgument() {
        try (MoeModel model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL))) {
            Status typeError = tokenize(model, "user", "subtract");
            assertThat(typeError.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(typeError.getDescription())
                    .isEqualTo("TypeError: unsupported operand type(s) for -: 'str' and 'int'");

            Status tooLong = tokenize(model, "user", "repeat");
            assertThat(tooLong.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(tooLong.getDescription()).startsWith("The chat template's output for chat would be longer than")
                    .contains("prompt tokens can hold");
        }
    }
}
