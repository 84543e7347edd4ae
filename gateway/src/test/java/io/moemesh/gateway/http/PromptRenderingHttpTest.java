package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.support.Completions;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.golden.TestModels;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.context.bean.override.convention.TestBean;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * How a request becomes the prompt's ids, each option honoured as vLLM and transformers honour it: the chat
 * template's add_generation_prompt, chat_template_kwargs and continue_final_message, text parts joined with
 * newlines, add_special_tokens: false without BOS; and the context's room as a limit on an explicit max_tokens.
 * A chat is checked against a completion of the text its template must render: the same ids give the same
 * prompt_tokens and the same greedy text.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class PromptRenderingHttpTest {
    private static final String MODEL = TestModels.MIXTRAL_BF16;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static final String C = "/v1/completions";
    private static final String CHAT = "/v1/chat/completions";
    private static final String HI = "[{\"role\":\"user\",\"content\":\"Hi there\"}]";
    private static final String HI_RENDERED = "<|im_start|>user\nHi there<|im_end|>\n";
    private static final String ASSISTANT_HEADER = "<|im_start|>assistant\n";

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
    }

    /** The model has no chat template: ChatML, with a variable only chat_template_kwargs can set. */
    @TestBean(name = "chatTemplate", methodName = "prefixedChatTemplate")
    ChatTemplate chatTemplate;

    static ChatTemplate prefixedChatTemplate() {
        return ChatTemplate.of("{% if system_prefix is defined %}{{ system_prefix }}{% endif %}"
                + OpenAiController.DEFAULT_CHAT_TEMPLATE, Map.of());
    }

    @LocalServerPort
    int port;

    private HttpResponse<String> post(String path, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private JsonNode ok(String path, String body) throws Exception {
        HttpResponse<String> r = post(path, body);
        assertThat(r.statusCode()).as(body + " → " + r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    private JsonNode refused(String path, String body, String param) throws Exception {
        HttpResponse<String> r = post(path, body);
        assertThat(r.statusCode()).as(body + " → " + r.body()).isEqualTo(400);
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertThat(e.get("param").stringValue()).as(r.body()).isEqualTo(param);
        return e;
    }

    private JsonNode chat(String messages, String fields) throws Exception {
        return ok(CHAT, "{\"model\":\"" + MODEL + "\",\"max_tokens\":4,\"temperature\":0,\"messages\":" + messages
                + fields + "}");
    }

    private JsonNode completion(String prompt) throws Exception {
        return ok(C, "{\"model\":\"" + MODEL + "\",\"max_tokens\":4,\"temperature\":0,\"prompt\":"
                + JSON.writeValueAsString(prompt) + "}");
    }

    /** The chat's prompt is exactly {@code rendered}: same prompt_tokens, same greedy text. */
    private void assertRendersAs(JsonNode chat, String rendered) throws Exception {
        JsonNode expected = completion(rendered);
        assertThat(chat.at("/usage/prompt_tokens").intValue()).as(rendered)
                .isEqualTo(expected.at("/usage/prompt_tokens").intValue());
        assertThat(chat.at("/choices/0/message/content").stringValue()).as(rendered)
                .isEqualTo(expected.at("/choices/0/text").stringValue());
    }

    private static int promptTokens(JsonNode r) {
        return r.at("/usage/prompt_tokens").intValue();
    }

    @Test
    void addGenerationPromptFalse_rendersWithoutTheAssistantHeader_andTrueOrAbsentWithIt() throws Exception {
        JsonNode without = chat(HI, ",\"add_generation_prompt\":false");
        JsonNode with = chat(HI, ",\"add_generation_prompt\":true");
        assertRendersAs(without, HI_RENDERED);
        assertRendersAs(with, HI_RENDERED + ASSISTANT_HEADER);
        assertRendersAs(chat(HI, ""), HI_RENDERED + ASSISTANT_HEADER);
        assertThat(promptTokens(with) - promptTokens(without)).as("the generation prompt's tokens")
                .isEqualTo(promptTokens(completion(HI_RENDERED + ASSISTANT_HEADER)) - promptTokens(completion(HI_RENDERED)))
                .isPositive();
    }

    @Test
    void chatTemplateKwargs_areVariablesOfTheTemplate() throws Exception {
        assertRendersAs(chat(HI, ",\"chat_template_kwargs\":{\"system_prefix\":\"Be brief. \",\"enable_thinking\":false,"
                + "\"nested\":{\"a\":[1,2.5,null,true]}}"), "Be brief. " + HI_RENDERED + ASSISTANT_HEADER);
        String base = "{\"model\":\"" + MODEL + "\",\"max_tokens\":1,\"messages\":" + HI + ",\"chat_template_kwargs\":";
        refused(CHAT, base + "\"x\"}", "chat_template_kwargs");
        refused(CHAT, base + "{\"add_generation_prompt\":false}}", "chat_template_kwargs");
        refused(CHAT, base + "{\"messages\":[]}}", "chat_template_kwargs");
        refused(CHAT, base + "{\"tools\":[{\"type\":\"function\"}]}}", "chat_template_kwargs");
        refused(CHAT, base + "{\"many\":[" + "0,".repeat(ChatMessagesParser.MAX_TEMPLATE_VALUES)
                + "0]}}", "chat_template_kwargs");
    }

    /**
     * The limit counts the values inside chat_template_kwargs, not the object itself (docs/gateway-api.md: at most
     * 1024 values).
     */
    @Test
    void chatTemplateKwargs_holdAtMost1024Values_notCountingTheObjectItself() throws Exception {
        int max = ChatMessagesParser.MAX_TEMPLATE_VALUES;
        assertThat(max).isEqualTo(1024);
        StringBuilder flat = new StringBuilder("{");
        for (int i = 0; i < max; i++) {
            flat.append(i == 0 ? "" : ",").append("\"k").append(i).append("\":0");
        }
        String base = "{\"model\":\"" + MODEL + "\",\"max_tokens\":1,\"messages\":" + HI + ",\"chat_template_kwargs\":";
        ok(CHAT, base + flat + "}}");
        JsonNode e = refused(CHAT, base + flat + ",\"k" + max + "\":0}}", "chat_template_kwargs");
        assertThat(e.get("message").stringValue()).contains("more than " + max + " values");
    }

    @Test
    void continueFinalMessage_endsThePromptWithTheOpenFinalMessage() throws Exception {
        String messages = "[{\"role\":\"user\",\"content\":\"Hi there\"},{\"role\":\"assistant\",\"content\":\"Once upon\"}]";
        assertRendersAs(chat(messages, ",\"continue_final_message\":true,\"add_generation_prompt\":false"),
                HI_RENDERED + ASSISTANT_HEADER + "Once upon");
        // As vLLM: continuing a message and opening a new assistant turn (the default) exclude each other.
        JsonNode e = refused(CHAT, "{\"model\":\"" + MODEL + "\",\"max_tokens\":1,\"messages\":" + messages
                + ",\"continue_final_message\":true}", "continue_final_message");
        assertThat(e.get("message").stringValue()).contains("add_generation_prompt: false");
    }

    /** vLLM joins a message's text parts with "\n": the same request must give the same prompt. */
    @Test
    void textParts_areJoinedWithNewlines_asVllmJoinsThem() throws Exception {
        JsonNode parts = chat("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                + "{\"type\":\"text\",\"text\":\"b\"}]}]", "");
        JsonNode string = chat("[{\"role\":\"user\",\"content\":\"a\\nb\"}]", "");
        assertThat(promptTokens(parts)).isEqualTo(promptTokens(string));
        assertRendersAs(parts, "<|im_start|>user\na\nb<|im_end|>\n" + ASSISTANT_HEADER);
    }

    /** add_special_tokens: false (vLLM) prepends no BOS, to text, token ids and a chat alike; true is the default. */
    @Test
    void addSpecialTokensFalse_prependsNoBos_toTextTokenIdsAndChat() throws Exception {
        String text = "{\"model\":\"" + MODEL + "\",\"max_tokens\":4,\"temperature\":0,\"prompt\":\"gRPC\"";
        String ids = "{\"model\":\"" + MODEL + "\",\"max_tokens\":4,\"temperature\":0,\"prompt\":[5,6,7]";
        String noBos = "{\"model\":\"" + MODEL + "\",\"max_tokens\":4,\"temperature\":0,\"prompt\":[0,5,6,7]";
        for (String body : new String[] {text, ids}) {
            int with = promptTokens(ok(C, body + "}"));
            assertThat(promptTokens(ok(C, body + ",\"add_special_tokens\":true}"))).isEqualTo(with);
            assertThat(promptTokens(ok(C, body + ",\"add_special_tokens\":false}"))).as(body).isEqualTo(with - 1);
        }
        // Ids already starting with BOS get none added either way.
        assertThat(promptTokens(ok(C, noBos + "}"))).isEqualTo(4);
        assertThat(promptTokens(ok(C, ids + ",\"add_special_tokens\":false}"))).isEqualTo(3);
        assertThat(promptTokens(chat(HI, ",\"add_special_tokens\":false"))).isEqualTo(promptTokens(chat(HI, "")) - 1);
        // Nothing left to generate from: refused naming the prompt.
        JsonNode e = refused(C, "{\"model\":\"" + MODEL + "\",\"prompt\":\"\",\"add_special_tokens\":false}", "prompt");
        assertThat(e.get("message").stringValue()).contains("no tokens");
    }

    /**
     * OpenAI and vLLM refuse a max_tokens the context cannot hold (context_length_exceeded) rather than cutting
     * it short: the completion would end with finish reason length, as if the limit asked for had been reached.
     * Without max_tokens the completion still runs to the context's end.
     */
    @Test
    void explicitMaxTokens_beyondTheContextsRoom_is400ContextLengthExceeded_namingTheField() throws Exception {
        int context = JSON.readTree(HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/v1/models")).build(), HttpResponse.BodyHandlers.ofString()).body()).at("/data/0/max_model_len")
                .intValue();
        int[] ids = Completions.prompt(context - 11, 3);
        int room = context - ids.length - 1;
        String prompt = "{\"model\":\"" + MODEL + "\",\"prompt\":" + JSON.writeValueAsString(ids)
                + ",\"temperature\":0,\"ignore_eos\":true,";
        for (String field : new String[] {"max_tokens", "max_completion_tokens"}) {
            JsonNode e = refused(C, prompt + "\"" + field + "\":" + (room + 1) + "}", field);
            assertThat(e.get("code").stringValue()).isEqualTo("context_length_exceeded");
            assertThat(e.get("message").stringValue()).startsWith("This model's maximum context length is " + context
                    + " tokens. However, you requested " + (context + 1) + " tokens (" + (ids.length + 1)
                    + " in the prompt, " + (room + 1) + " in the completion).");
        }
        JsonNode chat = refused(CHAT, "{\"model\":\"" + MODEL + "\",\"messages\":" + HI + ",\"max_completion_tokens\":"
                + context + "}", "max_completion_tokens");
        assertThat(chat.get("code").stringValue()).isEqualTo("context_length_exceeded");
        assertThat(chat.get("message").stringValue()).contains("in the messages");

        JsonNode exact = ok(C, prompt + "\"max_tokens\":" + room + "}");
        assertThat(exact.at("/usage/completion_tokens").intValue()).isEqualTo(room);
        JsonNode unset = ok(C, prompt.substring(0, prompt.length() - 1) + "}");
        assertThat(unset.at("/usage/completion_tokens").intValue()).isEqualTo(room);
        assertThat(unset.at("/choices/0/finish_reason").stringValue()).isEqualTo("length");
    }

    /** The official clients' models.retrieve: the served model's object, 404 model_not_found for any other. */
    @Test
    void modelsRetrieve_answersTheServedModel_and404ModelNotFoundForAnother() throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/v1/models/" + MODEL)).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        JsonNode m = JSON.readTree(r.body());
        JsonNode listed = JSON.readTree(HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/v1/models")).build(), HttpResponse.BodyHandlers.ofString()).body()).at("/data/0");
        assertThat(m).isEqualTo(listed);
        assertThat(m.get("id").stringValue()).isEqualTo(MODEL);
        assertThat(m.get("object").stringValue()).isEqualTo("model");

        HttpResponse<String> other = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
                + "/v1/models/no-such-model")).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(other.statusCode()).isEqualTo(404);
        JsonNode e = JSON.readTree(other.body()).get("error");
        assertThat(e.get("code").stringValue()).isEqualTo("model_not_found");
        assertThat(e.get("message").stringValue()).contains("no-such-model");
    }
}
