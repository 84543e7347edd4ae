package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.GatewayApplication;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.service.testing.CountedProperties;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.AfterProperty;
import net.jqwik.api.lifecycle.BeforeContainer;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Fuzzing the OpenAI-compatible HTTP API of a real gateway (Spring Boot on a real socket): valid requests with
 * fields replaced by values of the wrong type, huge or non-finite numbers, mixed arrays, deep nesting; unknown
 * and unsupported fields; bodies truncated, with flipped bytes or invalid UTF-8; wrong content types; with and
 * without Content-Length. Every answer must be 2xx or 4xx (never 5xx) and every 4xx OpenAI's error JSON without a
 * class name; after each property the gateway still produces the golden greedy text. Cases per property:
 * jqwik's default tries ({@code -Dfuzz.tries}, 1000 in the build). Valid-looking requests ask for at most 2
 * tokens, so a case costs milliseconds.
 */
class GatewayHttpFuzzTest extends CountedProperties {
    private static final String MODEL = TestModels.MIXTRAL_BF16;
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static ConfigurableApplicationContext app;
    /** Cases run by the current property: checked against the configured tries after it. */
    private static int port;

    @BeforeContainer
    static void start() {
        app = new SpringApplicationBuilder(GatewayApplication.class).run(
                "--moemesh.gateway.model-dir=" + TestModels.dir(MODEL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--spring.main.banner-mode=off");
        port = Integer.parseInt(app.getEnvironment().getProperty("local.server.port"));
    }

    @AfterContainer
    static void stop() {
        app.close();
    }

    /** One HTTP request as sent: raw body bytes, content type (null: none), chunked or with Content-Length. */
    record Fuzzed(String path, byte[] body, String contentType, boolean chunked) {
        @Override
        public String toString() {
            return path + " " + contentType + (chunked ? " chunked " : " ") + new String(body, 0,
                    Math.min(body.length, 400), StandardCharsets.UTF_8);
        }
    }

    @Property
    void completions_neverAnswer5xx(@ForAll("completions") Fuzzed request) throws Exception {
        check(request);
    }

    @Property
    void chatCompletions_neverAnswer5xx(@ForAll("chats") Fuzzed request) throws Exception {
        check(request);
    }



    @AfterProperty
    void stillGolden() throws Exception {
        GoldenCase g = GoldenCase.load(MODEL).get(2);
        HttpResponse<String> r = send(new Fuzzed("/v1/completions", JSON.writeValueAsBytes(Map.of("model", MODEL,
                "prompt", g.prompt(), "max_tokens", 16, "temperature", 0)), "application/json", false));
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(JSON.readTree(r.body()).at("/choices/0/text").stringValue()).isEqualTo(g.greedyText());
    }

    private static HttpResponse<String> send(Fuzzed f) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + f.path()))
                .timeout(Duration.ofSeconds(30))
                .POST(f.chunked() ? HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(f.body()))
                        : HttpRequest.BodyPublishers.ofByteArray(f.body()));
        if (f.contentType() != null) {
            b.header("Content-Type", f.contentType());
        }
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    private static void check(Fuzzed f) throws Exception {
        countCase();
        HttpResponse<String> r = send(f);
        assertThat(r.statusCode()).as(r.body()).isIn(200, 400, 404, 413, 415);
        assertThat(r.body()).doesNotContain("Exception").doesNotContain("server_error");
        if (r.statusCode() >= 400) {
            JsonNode e = JSON.readTree(r.body()).get("error");
            assertThat(e.get("message").stringValue()).isNotBlank();
            assertThat(e.get("type").stringValue()).isEqualTo("invalid_request_error");
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Generators. A request is a JSON object of raw JSON values (so numbers like 1e400 or 2^64 survive), mutated.
    // ---------------------------------------------------------------------------------------------------------

    private static final List<String> COMPLETION_FIELDS = List.of("model", "prompt", "max_tokens", "temperature",
            "top_p", "top_k", "seed", "stop", "stream", "stream_options", "logprobs", "ignore_eos", "n", "best_of",
            "echo", "logit_bias", "suffix", "response_format", "user", "frequency_penalty", "tools");
    private static final List<String> CHAT_FIELDS = List.of("model", "messages", "max_tokens", "max_completion_tokens",
            "temperature", "top_p", "seed", "stop", "stream", "stream_options", "logprobs", "top_logprobs",
            "tool_choice", "response_format", "user", "parallel_tool_calls");

    private static String quote(String s) {
        return JSON.writeValueAsString(s);
    }

    /** Text, often with what tokenizers and JSON escapes find hard. */
    private static Arbitrary<String> text() {
        return Arbitraries.oneOf(Arbitraries.strings().ofMaxLength(24),
                Arbitraries.strings().withCharRange(' ', '~').ofMaxLength(24),
                Arbitraries.of("", "gRPC", "Experts in a mixture", "<s>", "</s>", "é\u0301", "😀", "\u0000", "\uFFFF",
                        "\uD800", "a\nb", "\"", "\\"));
    }

    /** Any JSON value, raw, weighted towards the ones that broke parsers: huge numbers, mixed arrays, nesting. */
    private static Arbitrary<String> anyValue() {
        Arbitrary<String> numbers = Arbitraries.of("0", "-0", "1", "2", "-1", "0.5", "1.5", "-2.5", "1e400", "-1e400",
                "1e-400", "2147483647", "2147483648", "-2147483649", "4294967295", "9223372036854775807",
                "9223372036854775808", "-9223372036854775809", "18446744073709551616", "1" + "0".repeat(60), "5e-1",
                "1E2", "3.0");
        Arbitrary<String> strings = Arbitraries.oneOf(text().map(GatewayHttpFuzzTest::quote),
                Arbitraries.of("\"NaN\"", "\"Infinity\"", "\"-1\"", "\"1e400\"", "\"true\"", "\"text\""));
        Arbitrary<String> atoms = Arbitraries.oneOf(numbers, strings, Arbitraries.of("true", "false", "null"));
        Arbitrary<String> arrays = atoms.list().ofMaxSize(5).map(l -> "[" + String.join(",", l) + "]");
        Arbitrary<String> objects = Combinators.combine(Arbitraries.of("type", "text", "role", "content", "x",
                "include_usage", "5"), atoms).as((k, v) -> quote(k) + ":" + v).list().ofMaxSize(3)
                .map(l -> "{" + String.join(",", l) + "}");
        Arbitrary<String> nested = Arbitraries.integers().between(1, 600)
                .map(d -> "[".repeat(d) + "]".repeat(d));
        Arbitrary<String> messages = Combinators.combine(Arbitraries.of("user", "system", "assistant", "developer",
                "tool", "wizard"), text(), Arbitraries.integers().between(0, 3)).as((role, t, shape) -> switch (shape) {
                    case 0 -> "{\"role\":" + quote(role) + ",\"content\":" + quote(t) + "}";
                    case 1 -> "{\"role\":" + quote(role) + ",\"content\":[{\"type\":\"text\",\"text\":" + quote(t) + "}]}";
                    case 2 -> "{\"role\":" + quote(role) + ",\"content\":[" + quote(t) + "]}";
                    default -> "{\"content\":" + quote(t) + "}";
                }).list().ofMaxSize(4).map(l -> "[" + String.join(",", l) + "]");
        return Arbitraries.frequencyOf(Tuple.of(4, atoms), Tuple.of(2, arrays), Tuple.of(2, objects),
                Tuple.of(1, nested), Tuple.of(1, messages));
    }

    /** max_tokens values: invalid ones and valid ones of at most 2 (a case must stay cheap); never absent. */
    private static Arbitrary<String> maxTokens() {
        return Arbitraries.of("1", "2", "0", "-1", "2147483648", "9223372036854775808", "1e400", "1.5", "\"2\"", "[]",
                "{}", "true", "2.0");
    }

    private static Arbitrary<Map<String, String>> base(boolean chat) {
        Arbitrary<String> input = chat
                ? Combinators.combine(text(), text()).as((a, b) -> "[{\"role\":\"system\",\"content\":" + quote(a)
                        + "},{\"role\":\"user\",\"content\":" + quote(b) + "}]")
                : Arbitraries.oneOf(text().map(GatewayHttpFuzzTest::quote),
                        Arbitraries.integers().between(0, 511).list().ofMinSize(1).ofMaxSize(8).map(List::toString));
        return Combinators.combine(input, Arbitraries.of("1", "2"), Arbitraries.of("0", "0.7"), Arbitraries.of(true, false))
                .as((in, max, temperature, stream) -> {
                    Map<String, String> m = new LinkedHashMap<>();
                    m.put("model", quote(MODEL));
                    m.put(chat ? "messages" : "prompt", in);
                    m.put("max_tokens", max);
                    m.put("temperature", temperature);
                    if (stream) {
                        m.put("stream", "true");
                    }
                    return m;
                });
    }

    private record Mutation(String field, String value, boolean remove) {
    }

    private static Arbitrary<Mutation> mutation(boolean chat) {
        List<String> fields = chat ? CHAT_FIELDS : COMPLETION_FIELDS;
        Arbitrary<String> field = Arbitraries.oneOf(Arbitraries.of(fields), Arbitraries.strings().alpha().ofMaxLength(8));
        return Combinators.combine(field, anyValue(), maxTokens(), Arbitraries.integers().between(0, 9))
                .as((f, v, mt, r) -> f.startsWith("max_") ? new Mutation(f, mt, false)
                        : new Mutation(f, v, r == 0 && !f.equals("model")));
    }

    private static String render(Map<String, String> fields) {
        List<String> parts = new ArrayList<>();
        fields.forEach((k, v) -> parts.add(quote(k) + ":" + v));
        return "{" + String.join(",", parts) + "}";
    }

    /** Byte-level damage: none (most often), truncation, a flipped byte, invalid UTF-8 spliced in, or noise. */
    private static Arbitrary<java.util.function.UnaryOperator<byte[]>> damage() {
        Arbitrary<java.util.function.UnaryOperator<byte[]>> none = Arbitraries.just(b -> b);
        Arbitrary<java.util.function.UnaryOperator<byte[]>> truncate = Arbitraries.doubles().between(0, 1)
                .map(f -> b -> Arrays.copyOf(b, (int) (b.length * f)));
        Arbitrary<java.util.function.UnaryOperator<byte[]>> flip = Combinators.combine(Arbitraries.doubles().between(0, 1),
                Arbitraries.integers().between(0, 255)).as((f, v) -> b -> {
                    byte[] c = b.clone();
                    if (c.length > 0) {
                        c[Math.min(c.length - 1, (int) (c.length * f))] = (byte) (int) v;
                    }
                    return c;
                });
        Arbitrary<java.util.function.UnaryOperator<byte[]>> badUtf8 = Combinators.combine(Arbitraries.doubles()
                .between(0, 1), Arbitraries.of(new byte[] {(byte) 0xC3, 0x28}, new byte[] {(byte) 0xFF},
                new byte[] {(byte) 0x80}, new byte[] {(byte) 0xED, (byte) 0xA0, (byte) 0x80},
                new byte[] {(byte) 0xF4, (byte) 0x90, (byte) 0x80, (byte) 0x80})).as((f, bad) -> b -> {
                    int at = (int) (b.length * f);
                    byte[] c = new byte[b.length + bad.length];
                    System.arraycopy(b, 0, c, 0, at);
                    System.arraycopy(bad, 0, c, at, bad.length);
                    System.arraycopy(b, at, c, at + bad.length, b.length - at);
                    return c;
                });
        Arbitrary<java.util.function.UnaryOperator<byte[]>> noise = Arbitraries.bytes().array(byte[].class).ofMaxSize(64)
                .map(n -> b -> n);
        return Arbitraries.frequencyOf(Tuple.of(12, none), Tuple.of(2, truncate), Tuple.of(2, flip),
                Tuple.of(2, badUtf8), Tuple.of(1, noise));
    }

    private static Arbitrary<Fuzzed> requests(boolean chat) {
        // "" = no Content-Type header.
        Arbitrary<String> contentType = Arbitraries.frequency(Tuple.of(16, "application/json"),
                Tuple.of(1, "text/plain"), Tuple.of(1, "application/json; charset=UTF-8"), Tuple.of(1, ""));
        return Combinators.combine(base(chat), mutation(chat).list().ofMaxSize(4), damage(), contentType,
                Arbitraries.of(true, false)).as((fields, mutations, dmg, type, chunked) -> {
                    Map<String, String> m = new LinkedHashMap<>(fields);
                    for (Mutation mu : mutations) {
                        if (mu.remove()) {
                            m.remove(mu.field());
                        } else {
                            m.put(mu.field(), mu.value());
                        }
                    }
                    byte[] body = dmg.apply(render(m).getBytes(StandardCharsets.UTF_8));
                    return new Fuzzed(chat ? "/v1/chat/completions" : "/v1/completions", body,
                            type.isEmpty() ? null : type, chunked);
                });
    }

    @Provide
    Arbitrary<Fuzzed> completions() {
        return requests(false);
    }

    @Provide
    Arbitrary<Fuzzed> chats() {
        return requests(true);
    }
}
