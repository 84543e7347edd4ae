package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Every request field is honoured or refused with 400 naming it, never silently dropped (docs/gateway-api.md, HTTP
 * API): unknown fields as OpenAI refuses them, vLLM's extensions unless at their neutral value, message fields the
 * template would not see; only fields that cannot change the answer are accepted unused.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class RequestFieldsHttpTest {
    private static final String MODEL = TestModels.MIXTRAL_BF16;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static final String C = "/v1/completions";
    private static final String CHAT = "/v1/chat/completions";
    private static final String USER = "[{\"role\":\"user\",\"content\":\"a\"}]";

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
    }

    @LocalServerPort
    int port;

    private HttpResponse<String> post(String path, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .timeout(Duration.ofSeconds(30)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private static String completion(String fields) {
        return "{\"model\":\"" + MODEL + "\",\"prompt\":\"x\",\"max_tokens\":1," + fields + "}";
    }

    private static String chat(String fields) {
        return chatWith(USER, fields);
    }

    private static String chatWith(String messages, String fields) {
        return "{\"model\":\"" + MODEL + "\",\"max_tokens\":1,\"messages\":" + messages
                + (fields.isEmpty() ? "" : "," + fields) + "}";
    }

    private static String path(String body) {
        return body.contains("\"prompt\":\"x\"") ? C : CHAT;
    }

    private JsonNode refused(String path, String body, String param) throws Exception {
        HttpResponse<String> r = post(path, body);
        assertThat(r.statusCode()).as(body + " → " + r.body()).isEqualTo(400);
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertThat(e.get("param").stringValue()).as(r.body()).isEqualTo(param);
        assertThat(e.get("type").stringValue()).isEqualTo("invalid_request_error");
        assertThat(e.get("message").stringValue()).contains(param);
        return e;
    }

    static Stream<Arguments> unknownFields() {
        return Stream.of(
                Arguments.of(C, completion("\"temperatur\":0"), "temperatur"),
                Arguments.of(C, completion("\"foo\":null"), "foo"),
                Arguments.of(CHAT, chat("\"foo\":{\"a\":[1]}"), "foo"),
                // The other endpoint's input is not read: a client sending it expects it used.
                Arguments.of(CHAT, chat("\"prompt\":\"x\""), "prompt"),
                Arguments.of(C, completion("\"messages\":" + USER), "messages"),
                Arguments.of(C, completion("\"add_generation_prompt\":false"), "add_generation_prompt"),
                Arguments.of(C, completion("\"chat_template_kwargs\":{}"), "chat_template_kwargs"),
                Arguments.of(C, completion("\"stream\":true,\"stream_options\":{\"include_usage\":true,\"x\":1}"),
                        "stream_options.x"));
    }

    @ParameterizedTest(name = "{2}")
    @MethodSource("unknownFields")
    void unknownField_is400Unrecognized_namingIt(String path, String body, String param) throws Exception {
        JsonNode e = refused(path, body, param);
        assertThat(e.get("message").stringValue()).startsWith("Unrecognized request argument supplied: " + param);
    }

    /** vLLM's extensions (and a few OpenAI parameters) with a value that asks for something MoE Mesh does not do. */
    static Stream<Arguments> unsupportedValues() {
        return Stream.of(
                Arguments.of("stop_token_ids", "[2]"), Arguments.of("min_p", "0.1"),
                Arguments.of("include_stop_str_in_output", "true"), Arguments.of("skip_special_tokens", "false"),
                Arguments.of("spaces_between_special_tokens", "false"), Arguments.of("allowed_token_ids", "[3]"),
                Arguments.of("bad_words", "[\"x\"]"), Arguments.of("guided_json", "{\"type\":\"object\"}"),
                Arguments.of("guided_regex", "\"a+\""), Arguments.of("guided_choice", "[\"a\",\"b\"]"),
                Arguments.of("guided_grammar", "\"root ::= x\""), Arguments.of("guided_decoding_backend", "\"xgrammar\""),
                Arguments.of("structured_outputs", "{\"regex\":\"a\"}"), Arguments.of("prompt_logprobs", "0"),
                Arguments.of("use_beam_search", "true"), Arguments.of("length_penalty", "0.5"),
                Arguments.of("truncate_prompt_tokens", "4"), Arguments.of("reasoning_effort", "\"low\""),
                Arguments.of("chat_template", "\"{{ messages }}\""), Arguments.of("store", "true"),
                Arguments.of("priority", "1"), Arguments.of("return_tokens_as_token_ids", "true"),
                Arguments.of("cache_salt", "\"s\""), Arguments.of("request_id", "\"r\""),
                Arguments.of("modalities", "[\"text\",\"audio\"]"), Arguments.of("modalities", "[\"audio\"]"),
                Arguments.of("modalities", "[]"), Arguments.of("verbosity", "\"low\""));
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("unsupportedValues")
    void unsupportedParameter_withAValue_is400NamingIt(String name, String value) throws Exception {
        for (String body : new String[] {completion("\"" + name + "\":" + value), chat("\"" + name + "\":" + value)}) {
            JsonNode e = refused(path(body), body, name);
            assertThat(e.get("message").stringValue()).isEqualTo("unsupported parameter(s): " + name);
        }
    }

    /** What clients send for these parameters left at their defaults: null or the value that asks for nothing. */
    @Test
    void unsupportedParameter_atItsNeutralValue_isAccepted() throws Exception {
        String neutral = "\"stop_token_ids\":[],\"min_p\":0,\"include_stop_str_in_output\":false,"
                + "\"skip_special_tokens\":true,\"spaces_between_special_tokens\":true,\"allowed_token_ids\":null,"
                + "\"bad_words\":[],\"guided_json\":null,\"guided_regex\":null,\"guided_choice\":null,"
                + "\"guided_grammar\":null,\"guided_decoding_backend\":null,\"structured_outputs\":null,"
                + "\"prompt_logprobs\":null,\"use_beam_search\":false,\"length_penalty\":1.0,"
                + "\"truncate_prompt_tokens\":null,\"reasoning_effort\":null,\"chat_template\":null,\"store\":false,"
                + "\"priority\":0,\"return_tokens_as_token_ids\":false,\"cache_salt\":null,\"add_special_tokens\":true,"
                + "\"modalities\":[\"text\"],\"verbosity\":\"medium\"";
        for (String body : new String[] {completion(neutral), chat(neutral + ",\"continue_final_message\":false,"
                + "\"add_generation_prompt\":true,\"chat_template_kwargs\":null"),
                completion("\"stream\":true,\"stream_options\":{\"include_usage\":true,\"continuous_usage_stats\":false}"),
                completion("\"stream\":true,\"stream_options\":{\"include_usage\":true,\"include_obfuscation\":false}"),
                chat("\"stream\":true,\"stream_options\":{\"include_obfuscation\":false}")}) {
            HttpResponse<String> r = post(path(body), body);
            assertThat(r.statusCode()).as(body + " → " + r.body()).isEqualTo(200);
        }
        refused(C, completion("\"stream\":true,\"stream_options\":{\"continuous_usage_stats\":true}"),
                "stream_options.continuous_usage_stats");
    }

    /**
     * OpenAI pads each streamed chunk when include_obfuscation is true (its default): false asks for what the gateway
     * does, true for padding it never adds, refused saying so rather than dropped in silence.
     */
    @Test
    void includeObfuscation_false_isAccepted_true_isRefusedSayingNoPaddingIsAdded() throws Exception {
        String off = completion("\"stream\":true,\"stream_options\":{\"include_obfuscation\":false}");
        HttpResponse<String> r = post(C, off);
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(r.body()).endsWith("data: [DONE]\n\n").doesNotContain("obfuscation");
        JsonNode e = refused(C, completion("\"stream\":true,\"stream_options\":{\"include_obfuscation\":true}"),
                "stream_options.include_obfuscation");
        assertThat(e.get("message").stringValue()).startsWith("unsupported parameter(s): stream_options.include_obfuscation")
                .contains("no obfuscation padding");
    }

    /**
     * user, safety_identifier, metadata, service_tier, prompt_cache_key are accepted with any value and not used;
     * a field beside them that the API does not know is not.
     */
    @Test
    void onlyFieldsThatCannotChangeTheAnswer_areAcceptedUnused() throws Exception {
        String fields = "\"user\":\"u-1\",\"safety_identifier\":\"h\",\"metadata\":{\"k\":\"v\"},"
                + "\"service_tier\":\"auto\",\"prompt_cache_key\":\"p\"";
        for (String body : new String[] {completion(fields), chat(fields)}) {
            HttpResponse<String> r = post(path(body), body);
            assertThat(r.statusCode()).as(body + " → " + r.body()).isEqualTo(200);
            refused(path(body), body.replace("\"user\":\"u-1\"", "\"usr\":\"u-1\""), "usr");
        }
    }

    @Test
    void topLogprobs_onCompletions_is400PointingToLogprobs() throws Exception {
        JsonNode e = refused(C, completion("\"logprobs\":2,\"top_logprobs\":3"), "top_logprobs");
        assertThat(e.get("message").stringValue()).contains("logprobs: n");
        assertThat(post(C, completion("\"logprobs\":2,\"top_logprobs\":null")).statusCode()).isEqualTo(200);
    }

    static Stream<Arguments> messageFields() {
        return Stream.of(
                Arguments.of("[{\"role\":\"assistant\",\"content\":\"a\",\"tool_calls\":[{\"id\":\"c\",\"type\":"
                        + "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]", "messages[0].tool_calls"),
                Arguments.of("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\","
                        + "\"tool_call_id\":\"c\"}]", "messages[1].tool_call_id"),
                Arguments.of("[{\"role\":\"assistant\",\"content\":\"a\",\"function_call\":{\"name\":\"f\"}}]",
                        "messages[0].function_call"),
                Arguments.of("[{\"role\":\"user\",\"content\":\"a\",\"name\":\"alice\"}]", "messages[0].name"),
                Arguments.of("[{\"role\":\"assistant\",\"content\":\"a\",\"reasoning_content\":\"r\"}]",
                        "messages[0].reasoning_content"));
    }

    @ParameterizedTest(name = "{1}")
    @MethodSource("messageFields")
    void messageField_theTemplateWouldNotSee_is400NamingIt(String messages, String param) throws Exception {
        JsonNode e = refused(CHAT, chatWith(messages, ""), param);
        assertThat(e.get("message").stringValue()).startsWith("unsupported message field(s): " + param);
    }

    @Test
    void unknownMessageField_is400Unrecognized_namingIt() throws Exception {
        JsonNode e = refused(CHAT, chatWith("[{\"role\":\"user\",\"content\":\"a\",\"x\":1}]", ""), "messages[0].x");
        assertThat(e.get("message").stringValue()).startsWith("Unrecognized request argument supplied: messages[0].x");
    }

    static Stream<Arguments> textPartKeys() {
        return Stream.of(
                Arguments.of("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\","
                        + "\"text\":\"b\",\"foo\":1}]}]", "messages[0].content[1].foo"),
                Arguments.of("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\",\"cache_control\":"
                        + "{\"type\":\"ephemeral\"}}]}]", "messages[0].content[0].cache_control"),
                Arguments.of("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":[{\"detail\":"
                        + "null,\"type\":\"text\",\"text\":\"b\"}]}]", "messages[1].content[0].detail"));
    }

    /** A text part is type and text: any other key would be silently dropped, so it is refused as unknown. */
    @ParameterizedTest(name = "{1}")
    @MethodSource("textPartKeys")
    void textPartKey_otherThanTypeAndText_is400Unrecognized_namingIt(String messages, String param) throws Exception {
        JsonNode e = refused(CHAT, chatWith(messages, ""), param);
        assertThat(e.get("message").stringValue()).startsWith("Unrecognized request argument supplied: " + param);
    }

    /**
     * An assistant message sent back as the official clients return it: its null and empty fields are accepted,
     * the same fields with a value are not.
     */
    @Test
    void messageFields_atTheirNeutralValues_areAccepted_withAValueRefused() throws Exception {
        String messages = "[{\"role\":\"user\",\"content\":\"a\",\"name\":null},{\"role\":\"assistant\",\"content\":"
                + "\"b\",\"refusal\":null,\"tool_calls\":null,\"function_call\":null,\"audio\":null,\"annotations\":[]},"
                + "{\"role\":\"user\",\"content\":\"c\",\"tool_calls\":[]}]";
        HttpResponse<String> r = post(CHAT, chatWith(messages, ""));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        refused(CHAT, chatWith(messages.replace("\"refusal\":null", "\"refusal\":\"no\""), ""), "messages[1].refusal");
        refused(CHAT, chatWith(messages.replace("\"annotations\":[]", "\"annotations\":[{\"type\":\"url_citation\"}]"), ""),
                "messages[1].annotations");
    }
}
