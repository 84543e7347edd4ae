package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.golden.TestModels;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.test.context.bean.override.convention.TestBean;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Client mistakes are 4xx in OpenAI's error JSON naming the field, never a 500 or a class name: the cases an
 * attacker found (seed past 2^63, prompt arrays mixing ids and strings) and their relatives. A chat template failing
 * on its own is no client mistake: 500, not a 400 blaming the messages.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class ClientErrorsHttpTest {
    private static final String MODEL = TestModels.MIXTRAL_BF16;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static final String C = "/v1/completions";
    private static final String CHAT = "/v1/chat/completions";

    private static final int MAX_NEW_TOKENS = 64;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.admission.max-new-tokens", () -> String.valueOf(MAX_NEW_TOKENS));
    }

    /**
     * The model has no chat template: this one is ChatML that refuses a conversation opened by the assistant, and
     * fails on its own (an attribute Jinjava's loop lacks) on a first message "break the template"; it subtracts
     * from a chat_template_kwargs value "budget" and repeats the first message by a value "repeat", as templates do
     * with their flags.
     */
    @TestBean(name = "chatTemplate", methodName = "raisingChatTemplate")
    ChatTemplate chatTemplate;

    static ChatTemplate raisingChatTemplate() {
        return ChatTemplate.of("{% if messages[0]['role'] == 'assistant' %}{{ raise_exception('Conversation must start "
                + "with a user message') }}{% endif %}{% if messages[0]['content'] == 'break the template' %}"
                + "{% for m in messages %}{{ loop['previtem'] }}{% endfor %}{% endif %}"
                + "{% if budget is defined %}{{ budget - 1 }}{% endif %}"
                + "{% if repeat is defined %}{{ messages[0]['content'] * repeat }}{% endif %}"
                + OpenAiController.DEFAULT_CHAT_TEMPLATE, Map.of());
    }

    @LocalServerPort
    int port;
    @Autowired
    MeterRegistry meters;

    private HttpResponse<String> send(String method, String path, String contentType, byte[] body, String accept)
            throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofByteArray(body));
        if (contentType != null) {
            b.header("Content-Type", contentType);
        }
        if (accept != null) {
            b.header("Accept", accept);
        }
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    private static String completion(String fields) {
        return "{\"model\":\"" + MODEL + "\",\"prompt\":\"x\",\"max_tokens\":1," + fields + "}";
    }

    private static String chat(String messages) {
        return "{\"model\":\"" + MODEL + "\",\"max_tokens\":1,\"messages\":" + messages + "}";
    }

    static Stream<Arguments> badBodies() {
        return Stream.of(
                Arguments.of(C, completion("\"seed\":9223372036854775808"), "seed", "seed must be an integer"),
                Arguments.of(C, completion("\"seed\":-9223372036854775809"), "seed", "seed must be an integer"),
                Arguments.of(C, completion("\"seed\":1.5"), "seed", "seed must be an integer"),
                Arguments.of(C, completion("\"seed\":\"7\""), "seed", "seed must be an integer"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[1,\"a\"]}", "prompt", "prompt[1] must be a token id"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[\"a\",1]}", "prompt", "batches of prompts"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[\"a\",\"b\"]}", "prompt", "batches of prompts"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[[1]]}", "prompt", "prompt must be"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[1.5]}", "prompt", "prompt must be"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[2,1.5]}", "prompt", "prompt[1] must be a token id"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[99999]}", "prompt", "not a token id of this model"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[-1]}", "prompt", "prompt[0] must be a token id"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[3000000000]}", "prompt", "prompt[0] must be a token id"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":[]}", "prompt", "prompt must be"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":{}}", "prompt", "prompt must be"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\"}", "prompt", "prompt must be"),
                Arguments.of(C, "{\"model\":7,\"prompt\":\"x\"}", "model", "model must be a string"),
                Arguments.of(CHAT, chat("[\"hello\"]"), "messages[0]", "messages[0] must be an object"),
                Arguments.of(CHAT, chat("[{\"role\":\"user\",\"content\":[1]}]"), "messages[0].content[0]", "must be an object"),
                Arguments.of(CHAT, chat("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]"), "messages[0].content[0]",
                        "only text content parts"),
                Arguments.of(CHAT, chat("[{\"role\":\"user\",\"content\":{\"text\":\"a\"}}]"), "messages[0].content",
                        "must be a string or an array"),
                Arguments.of(CHAT, chat("[{\"role\":null,\"content\":\"a\"}]"), "messages[0].role", "role must be"),
                Arguments.of(CHAT, chat("[{\"role\":\"user\"}]"), "messages[0].content", "content must be"),
                Arguments.of(CHAT, chat("{}"), "messages", "messages must be a non-empty array"),
                Arguments.of(C, completion("\"max_tokens\":2147483648"), "max_tokens", "max_tokens must be an integer"),
                Arguments.of(C, completion("\"max_tokens\":" + (MAX_NEW_TOKENS + 1)), "max_tokens",
                        "max_tokens " + (MAX_NEW_TOKENS + 1) + " exceeds the limit of " + MAX_NEW_TOKENS),
                Arguments.of(C, completion("\"max_completion_tokens\":" + (MAX_NEW_TOKENS + 1)),
                        "max_completion_tokens",
                        "max_completion_tokens " + (MAX_NEW_TOKENS + 1) + " exceeds the limit of " + MAX_NEW_TOKENS),
                Arguments.of(CHAT, chat("[{\"role\":\"user\",\"content\":\"a\"}],\"max_completion_tokens\":"
                        + (MAX_NEW_TOKENS + 1)), "max_completion_tokens", "exceeds the limit of " + MAX_NEW_TOKENS),
                Arguments.of(CHAT, chat("[{\"role\":\"assistant\",\"content\":\"a\"}]"), "messages",
                        "TemplateError: Conversation must start with a user message"),
                // values of chat_template_kwargs Python fails on are the client's, as the template's raise is;
                // and so is a template repeating the chat by the request's count past the prompt's byte budget
                Arguments.of(CHAT, chat("[{\"role\":\"user\",\"content\":\"a\"}],\"chat_template_kwargs\":"
                        + "{\"budget\":\"abc\"}"), "messages",
                        "TypeError: unsupported operand type(s) for -: 'str' and 'int'"),
                Arguments.of(CHAT, chat("[{\"role\":\"user\",\"content\":\"a\"}],\"chat_template_kwargs\":"
                        + "{\"repeat\":1000000000}"), "messages",
                        "The chat template's output for messages would be longer than"),
                Arguments.of(CHAT, chat("[{\"role\":\"user\",\"content\":\"x\\ud83dy\"}]"), "messages[0].content",
                        "messages[0].content is not valid Unicode: it has a lone surrogate \\ud83d at character 1"),
                Arguments.of(C, completion("\"stop\":\"\\udc00\"").replace("\"x\"", "\"\\ud83d\\ude00\""), "stop",
                        "stop is not valid Unicode"),
                Arguments.of(C, completion("\"max_tokens\":1e400"), "max_tokens", "max_tokens must be an integer"),
                Arguments.of(C, completion("\"temperature\":1e400"), "temperature", "temperature must be a number"),
                Arguments.of(C, completion("\"temperature\":\"NaN\""), "temperature", "temperature must be a number"),
                Arguments.of(C, completion("\"top_p\":\"0.5\""), "top_p", "top_p must be a number"),
                Arguments.of(C, completion("\"top_k\":-2"), "top_k", "top_k must be an integer"),
                Arguments.of(C, completion("\"stop\":[\"\"]"), "stop", "must not be empty"),
                Arguments.of(C, completion("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), "stop", "up to 4 strings"),
                Arguments.of(C, completion("\"stop\":\"" + "s".repeat(300) + "\""), "stop", "at most 256 characters"),
                Arguments.of(C, completion("\"stop\":[1]"), "stop", "stop must be a string"),
                Arguments.of(C, completion("\"stream_options\":{\"include_usage\":true}"), "stream_options", "only allowed"),
                Arguments.of(C, completion("\"stream\":true,\"stream_options\":[]"), "stream_options", "must be an object"),
                Arguments.of(C, completion("\"stream\":\"yes\""), "stream", "stream must be true or false"),
                Arguments.of(C, completion("\"logprobs\":true"), "logprobs", "logprobs must be an integer"),
                Arguments.of(CHAT, "{\"model\":\"" + MODEL + "\",\"top_logprobs\":2,\"messages\":[{\"role\":\"user\","
                        + "\"content\":\"a\"}]}", "top_logprobs", "needs logprobs"),
                Arguments.of(C, completion("\"response_format\":{\"type\":\"json_object\"}"), "response_format",
                        "unsupported parameter"),
                Arguments.of(C, completion("\"logit_bias\":{\"5\":1}"), "logit_bias", "unsupported parameter"),
                Arguments.of(C, completion("\"n\":1e400"), "n", "unsupported parameter"),
                Arguments.of(C, completion("\"n\":2"), "n", "unsupported parameter"),
                Arguments.of(CHAT, chat("[{\"role\":\"user\",\"content\":\"a\"}],\"parallel_tool_calls\":\"yes\""),
                        "parallel_tool_calls", "unsupported parameter"),
                Arguments.of(CHAT, chat("[{\"role\":\"user\",\"content\":\"a\"}],\"parallel_tool_calls\":true,"
                        + "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]"), "tools",
                        "unsupported parameter"),
                Arguments.of(C, completion("\"seed\":1") + " {}", null, "nothing after it"),
                Arguments.of(C, "[1,2]", null, "must be a JSON object"),
                Arguments.of(C, "", null, "must be a JSON object"),
                Arguments.of(C, completion("\"x\":" + "1".repeat(2000)), null, "not valid JSON"),
                Arguments.of(C, completion("\"x\":" + "[".repeat(5000) + "]".repeat(5000)), null, "not valid JSON"),
                Arguments.of(C, "{\"model\":\"" + MODEL + "\",\"prompt\":\"x\"", null, "not valid JSON"));
    }

    @ParameterizedTest(name = "{2}: {3}")
    @MethodSource("badBodies")
    void badBody_is400_namingTheField(String path, String body, String param, String message) throws Exception {
        HttpResponse<String> r = send("POST", path, "application/json", body.getBytes(StandardCharsets.UTF_8), null);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertThat(e.get("message").stringValue()).contains(message).doesNotContain("Exception");
        assertThat(e.get("param").isNull() ? null : e.get("param").stringValue()).isEqualTo(param);
        assertThat(e.get("type").stringValue()).isEqualTo("invalid_request_error");
    }

    /**
     * A chat template that fails on its own (whatever the conversation) is the server's fault: 500, "internal
     * error" and the request id, the details logged; not a 400 invalid_request_error blaming the messages.
     */
    @Test
    void chatTemplateFailingOnItsOwn_is500_notBlamedOnTheMessages() throws Exception {
        HttpResponse<String> r = send("POST", CHAT, "application/json",
                chat("[{\"role\":\"user\",\"content\":\"break the template\"}]").getBytes(StandardCharsets.UTF_8),
                null);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(500);
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertThat(e.get("type").stringValue()).isEqualTo("server_error");
        assertThat(e.get("message").stringValue()).startsWith("internal error; request id ");
        assertThat(e.get("param").isNull()).isTrue();
    }

    /**
     * What the official clients and frameworks send for parameters left at their defaults: null, OpenAI's neutral
     * value, and parallel_tool_calls true (OpenAI's default, meaningless without tools).
     */
    static Stream<Arguments> neutralValues() {
        String user = "[{\"role\":\"user\",\"content\":\"a\"}]";
        Stream<Arguments> nulls = Stream.of("n", "best_of", "echo", "suffix", "logit_bias", "frequency_penalty",
                        "presence_penalty", "repetition_penalty", "tools", "tool_choice", "functions", "function_call",
                        "audio", "prediction", "parallel_tool_calls", "min_tokens", "response_format")
                .flatMap(name -> Stream.of(Arguments.of(C, completion("\"" + name + "\":null")),
                        Arguments.of(CHAT, chat(user + ",\"" + name + "\":null"))));
        return Stream.concat(nulls, Stream.of(
                Arguments.of(CHAT, chat(user + ",\"parallel_tool_calls\":true")),
                Arguments.of(CHAT, chat(user + ",\"parallel_tool_calls\":false,\"tools\":[]")),
                Arguments.of(CHAT, chat(user + ",\"n\":1,\"frequency_penalty\":0,\"presence_penalty\":0.0,"
                        + "\"logit_bias\":{},\"tools\":null,\"tool_choice\":\"none\",\"parallel_tool_calls\":true")),
                Arguments.of(C, completion("\"n\":1,\"best_of\":1,\"echo\":false,\"suffix\":\"\""))));
    }

    @ParameterizedTest(name = "{1}")
    @MethodSource("neutralValues")
    void nullOrNeutralValue_ofAnUnsupportedParameter_isAccepted(String path, String body) throws Exception {
        HttpResponse<String> r = send("POST", path, "application/json", body.getBytes(StandardCharsets.UTF_8), null);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
    }

    /** Duplicate keys: the last one wins (as in Python's json module), for unsupported parameters too. */
    @Test
    void repeatedUnsupportedParameter_theLastValueDecides() throws Exception {
        String user = "[{\"role\":\"user\",\"content\":\"a\"}]";
        for (String body : java.util.List.of(completion("\"n\":2,\"n\":1"), completion("\"logit_bias\":{\"5\":1},\"logit_bias\":null"),
                chat(user + ",\"response_format\":{\"type\":\"json_object\"},\"response_format\":{\"type\":\"text\"}"))) {
            String path = body.contains("messages") ? CHAT : C;
            HttpResponse<String> r = send("POST", path, "application/json", body.getBytes(StandardCharsets.UTF_8), null);
            assertThat(r.statusCode()).as(body + " → " + r.body()).isEqualTo(200);
        }
        HttpResponse<String> refused = send("POST", C, "application/json",
                completion("\"n\":1,\"n\":2").getBytes(StandardCharsets.UTF_8), null);
        assertThat(refused.statusCode()).isEqualTo(400);
        assertThat(JSON.readTree(refused.body()).at("/error/param").stringValue()).isEqualTo("n");
        assertThat(JSON.readTree(refused.body()).at("/error/message").stringValue())
                .isEqualTo("unsupported parameter(s): n");
    }

    @Test
    void invalidUtf8InTheBody_is400NotValidJson() throws Exception {
        byte[] body = ("{\"model\":\"" + MODEL + "\",\"prompt\":\"zz\"}").getBytes(StandardCharsets.UTF_8);
        int at = new String(body, StandardCharsets.UTF_8).indexOf("zz");
        body[at] = (byte) 0xC3;
        body[at + 1] = (byte) 0x28;
        HttpResponse<String> r = send("POST", C, "application/json", body, null);
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(r.body()).contains("not valid JSON").doesNotContain("Exception");
    }

    @Test
    void wrongMethodContentTypeOrAccept_are4xxInOpenAiErrorJson() throws Exception {
        byte[] ok = completion("\"seed\":1").getBytes(StandardCharsets.UTF_8);
        HttpResponse<String> get = send("GET", C, null, null, null);
        assertThat(get.statusCode()).isEqualTo(405);
        // RFC 9110 §15.5.6: a 405 names the methods the resource supports.
        assertThat(get.headers().firstValue("Allow")).hasValue("POST");
        assertThat(get.body()).contains("\"error\"");
        HttpResponse<String> text = send("POST", C, "text/plain", ok, null);
        assertThat(text.statusCode()).isEqualTo(415);
        assertThat(text.headers().firstValue("Accept")).hasValue("application/json");
        assertThat(text.body()).contains("\"error\"");
        HttpResponse<String> none = send("POST", C, null, ok, null);
        assertThat(none.statusCode()).isEqualTo(415);
        HttpResponse<String> accept = send("POST", C, "application/json", ok, "image/png");
        assertThat(accept.statusCode()).isBetween(400, 499);
        HttpResponse<String> unknown = send("POST", "/v1/nothing", "application/json", ok, null);
        assertThat(unknown.statusCode()).isEqualTo(404);
        assertThat(send("POST", C, "application/json", ok, null).statusCode()).isEqualTo(200);
    }

    /** A non-streamed request whose Accept rules out JSON is refused before it runs: no token generated or counted. */
    @Test
    void acceptRulingOutJson_is406_beforeAnyTokenIsGenerated() throws Exception {
        byte[] body = completion("\"max_tokens\":8,\"ignore_eos\":true").getBytes(StandardCharsets.UTF_8);
        double tokens = meters.counter("moemesh.gateway.generation.tokens").count();
        for (String accept : java.util.List.of("image/png", "text/event-stream")) {
            HttpResponse<String> r = send("POST", C, "application/json", body, accept);
            assertThat(r.statusCode()).as(accept).isEqualTo(406);
            assertThat(r.body()).contains("\"error\"");
        }
        assertThat(meters.counter("moemesh.gateway.generation.tokens").count()).isEqualTo(tokens);
        // q=0 is "not acceptable" (RFC 9110 §12.4.2).
        assertThat(send("POST", C, "application/json", body, "application/json;q=0").statusCode()).isEqualTo(406);
        assertThat(meters.counter("moemesh.gateway.generation.tokens").count()).isEqualTo(tokens);
        assertThat(send("POST", C, "application/json", body, "application/*, text/plain;q=0.5").statusCode())
                .isEqualTo(200);
        assertThat(meters.counter("moemesh.gateway.generation.tokens").count()).isEqualTo(tokens + 8);
    }
}
