package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** The OpenAI-compatible HTTP API on a real socket (the official openai client runs against it in e2e). */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class OpenAiHttpTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    static final String MODEL = TestModels.MIXTRAL_BF16;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
    }

    @LocalServerPort
    int port;

    HttpResponse<String> post(String path, String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** The data payloads of an SSE body, [DONE] included. */
    static List<String> events(String body) {
        List<String> out = new ArrayList<>();
        for (String line : body.split("\n")) {
            if (line.startsWith("data:")) {
                out.add(line.substring(5).strip());
            }
        }
        return out;
    }

    @Test
    void completion_greedy_equalsGoldenText_andStreamJoinsToTheSameText() throws Exception {
        GoldenCase g = GoldenCase.load(MODEL).get(2);
        String req = JSON.writeValueAsString(java.util.Map.of("model", MODEL, "prompt", g.prompt(), "max_tokens", 16,
                "temperature", 0));
        HttpResponse<String> r = post("/v1/completions", req);
        assertThat(r.statusCode()).isEqualTo(200);
        JsonNode body = JSON.readTree(r.body());
        assertThat(body.at("/choices/0/text").stringValue()).isEqualTo(g.greedyText());
        assertThat(body.at("/choices/0/finish_reason").stringValue()).isEqualTo("length");
        assertThat(body.at("/usage/completion_tokens").intValue()).isEqualTo(16);
        assertThat(body.at("/usage/prompt_tokens").intValue()).isEqualTo(g.inputIds().length);
        assertThat(r.headers().firstValue("X-Request-Id")).isPresent();

        String streamReq = req.substring(0, req.length() - 1) + ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
        HttpResponse<String> s = post("/v1/completions", streamReq);
        List<String> events = events(s.body());
        assertThat(events.getLast()).isEqualTo("[DONE]");
        StringBuilder text = new StringBuilder();
        for (String e : events.subList(0, events.size() - 2)) {
            text.append(JSON.readTree(e).at("/choices/0/text").stringValue());
        }
        assertThat(text.toString()).isEqualTo(g.greedyText());
        assertThat(JSON.readTree(events.get(events.size() - 2)).at("/usage/total_tokens").intValue())
                .isEqualTo(16 + g.inputIds().length);
    }

    /**
     * OpenAI's exact wire format, {@code data: <json>} (with the space) and a blank line per event, ending with
     * {@code data: [DONE]}: clients that match the prefix "data: " must see every event.
     */
    @Test
    void stream_isWrittenAsDataSpaceJson_eachEventEndedByABlankLine_endingWithDataSpaceDone() throws Exception {
        for (String path : List.of("/v1/completions", "/v1/chat/completions")) {
            String input = path.contains("chat") ? "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]"
                    : "\"prompt\":\"gRPC\"";
            String body = post(path, "{\"model\":\"" + MODEL + "\"," + input + ",\"max_tokens\":4,\"temperature\":0,"
                    + "\"stream\":true,\"stream_options\":{\"include_usage\":true}}").body();
            assertThat(body).as(path).endsWith("\n\ndata: [DONE]\n\n");
            String[] events = body.substring(0, body.length() - 2).split("\n\n", -1);
            assertThat(events.length).as(path).isGreaterThanOrEqualTo(3);
            for (String event : events) {
                assertThat(event).as(path).startsWith("data: ").doesNotContain("\n");
                if (!event.equals("data: [DONE]")) {
                    assertThat(JSON.readTree(event.substring(6)).get("object").stringValue()).endsWith(
                            path.contains("chat") ? "chat.completion.chunk" : "text_completion");
                }
            }
        }
    }

    /**
     * With stream_options.include_usage every chunk but the last has {@code "usage": null} (OpenAI's reference: "All
     * other chunks will also include a usage field, but with a null value"), the last one the usage and no choices;
     * without it no chunk has the key, as from OpenAI. A chat's role chunk and the finish chunk included.
     */
    @Test
    void streamWithIncludeUsage_everyOtherChunkHasUsageNull_withoutItNoChunkHasUsage() throws Exception {
        for (String path : List.of("/v1/completions", "/v1/chat/completions")) {
            String input = path.contains("chat") ? "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]"
                    : "\"prompt\":\"gRPC\"";
            String stream = "{\"model\":\"" + MODEL + "\"," + input + ",\"max_tokens\":4,\"temperature\":0,"
                    + "\"ignore_eos\":true,\"stream\":true";
            List<String> with = events(post(path, stream + ",\"stream_options\":{\"include_usage\":true}}").body());
            List<String> chunks = with.subList(0, with.size() - 1);
            assertThat(chunks.size()).as(path).isGreaterThanOrEqualTo(3);
            for (String chunk : chunks.subList(0, chunks.size() - 1)) {
                JsonNode c = JSON.readTree(chunk);
                assertThat(c.has("usage")).as(path + ": " + chunk).isTrue();
                assertThat(c.get("usage").isNull()).as(path + ": " + chunk).isTrue();
            }
            JsonNode last = JSON.readTree(chunks.getLast());
            assertThat(last.get("choices").isEmpty()).as(path).isTrue();
            assertThat(last.at("/usage/completion_tokens").intValue()).as(path).isEqualTo(4);

            List<String> without = events(post(path, stream + "}").body());
            assertThat(without.getLast()).isEqualTo("[DONE]");
            for (String chunk : without.subList(0, without.size() - 1)) {
                assertThat(JSON.readTree(chunk).has("usage")).as(path + ": " + chunk).isFalse();
            }
        }
    }

    /** max_completion_tokens, OpenAI's newer name for max_tokens, counts on /v1/completions too, and wins over it. */
    @Test
    void completion_honoursMaxCompletionTokens_whichWinsOverMaxTokens() throws Exception {
        for (String fields : List.of("\"max_completion_tokens\":3", "\"max_tokens\":5,\"max_completion_tokens\":3",
                "\"max_completion_tokens\":3,\"max_tokens\":5")) {
            JsonNode r = JSON.readTree(post("/v1/completions", "{\"model\":\"" + MODEL + "\",\"prompt\":\"gRPC\","
                    + "\"temperature\":0,\"ignore_eos\":true," + fields + "}").body());
            assertThat(r.at("/usage/completion_tokens").intValue()).as(fields).isEqualTo(3);
            assertThat(r.at("/choices/0/finish_reason").stringValue()).as(fields).isEqualTo("length");
        }
    }

    /**
     * Completions logprobs carry OpenAI's text_offset: where each token's text starts in the completion's text (in
     * code points), counted on across a stream's chunks as over a whole response. After "gRPC" this model generates
     * parts of characters, keyed by their bytes: such a token's offset is where the character it is part of starts.
     */
    @Test
    void completionLogprobs_textOffset_isWhereEachTokensTextStarts_countedOnAcrossStreamChunks() throws Exception {
        String req = "{\"model\":\"" + MODEL + "\",\"prompt\":\"gRPC\",\"max_tokens\":16,\"temperature\":0,"
                + "\"logprobs\":2";
        JsonNode choice = JSON.readTree(post("/v1/completions", req + "}").body()).at("/choices/0");
        String text = choice.get("text").stringValue();
        JsonNode lp = choice.get("logprobs");
        List<Integer> whole = new ArrayList<>();
        lp.get("text_offset").forEach(o -> whole.add(o.intValue()));
        assertThat(whole).hasSize(16).isSorted();
        int texts = 0;
        for (int i = 0; i < whole.size(); i++) {
            String token = lp.get("tokens").get(i).stringValue();
            int at = text.offsetByCodePoints(0, whole.get(i));
            if (!token.startsWith("bytes:")) {
                assertThat(text.startsWith(token, at)).as("token %d %s at %d of %s", i, token, whole.get(i), text)
                        .isTrue();
                texts++;
            }
        }
        assertThat(texts).isPositive();

        List<Integer> streamed = new ArrayList<>();
        for (String e : events(post("/v1/completions", req + ",\"stream\":true}").body())) {
            if (!e.equals("[DONE]")) {
                JSON.readTree(e).at("/choices/0/logprobs/text_offset").forEach(o -> streamed.add(o.intValue()));
            }
        }
        assertThat(streamed).isEqualTo(whole);
    }

    @Test
    void chat_streamed_equalsNonStreamed_withRoleChunkFirst() throws Exception {
        String req = "{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi there\"}],"
                + "\"max_tokens\":12,\"temperature\":0.7,\"seed\":5";
        JsonNode whole = JSON.readTree(post("/v1/chat/completions", req + "}").body());
        List<String> events = events(post("/v1/chat/completions", req + ",\"stream\":true}").body());
        assertThat(JSON.readTree(events.getFirst()).at("/choices/0/delta/role").stringValue()).isEqualTo("assistant");
        StringBuilder text = new StringBuilder();
        for (String e : events.subList(0, events.size() - 1)) {
            text.append(JSON.readTree(e).at("/choices/0/delta/content").stringValue(""));
        }
        assertThat(text.toString()).isEqualTo(whole.at("/choices/0/message/content").stringValue());
        assertThat(whole.at("/object").stringValue()).isEqualTo("chat.completion");
    }

    @Test
    void stopString_endsTheTextBeforeIt_inBothModes() throws Exception {
        GoldenCase g = GoldenCase.load(MODEL).get(2);
        String stop = g.greedyText().substring(5, 8);
        String expected = g.greedyText().substring(0, g.greedyText().indexOf(stop));
        String req = "{\"model\":\"" + MODEL + "\",\"prompt\":" + JSON.writeValueAsString(g.prompt())
                + ",\"max_tokens\":16,\"temperature\":0,\"stop\":[" + JSON.writeValueAsString(stop) + "]";
        JsonNode whole = JSON.readTree(post("/v1/completions", req + "}").body());
        assertThat(whole.at("/choices/0/text").stringValue()).isEqualTo(expected);
        assertThat(whole.at("/choices/0/finish_reason").stringValue()).isEqualTo("stop");
        StringBuilder text = new StringBuilder();
        for (String e : events(post("/v1/completions", req + ",\"stream\":true}").body())) {
            if (!e.equals("[DONE]")) {
                text.append(JSON.readTree(e).at("/choices/0/text").stringValue());
            }
        }
        assertThat(text.toString()).isEqualTo(expected);
    }

    @Test
    void logprobs_topFive_chosenTokenIsTheMostLikelyWhenGreedy() throws Exception {
        JsonNode r = JSON.readTree(post("/v1/completions", "{\"model\":\"" + MODEL
                + "\",\"prompt\":\"gRPC\",\"max_tokens\":3,\"temperature\":0,\"logprobs\":5}").body());
        JsonNode lp = r.at("/choices/0/logprobs");
        assertThat(lp.get("tokens")).hasSize(3);
        // Greedy: the sampled token is the most likely, one of the five (else it would be a sixth entry).
        assertThat(lp.get("top_logprobs").get(0).size()).isEqualTo(5);
        assertThat(lp.get("token_logprobs").get(0).doubleValue()).isLessThanOrEqualTo(0);
    }

    /**
     * OpenAI's {@code bytes}: a token's own bytes, so that the parts of a character split across tokens join into
     * it. The tiny model's byte-level vocabulary is half lone non-ASCII bytes, whose text alone is U+FFFD: their
     * bytes are that byte (not EF BF BD, the UTF-8 of U+FFFD), and the chosen tokens' bytes join into the content.
     */
    @Test
    void chatLogprobs_bytes_areTheTokensOwnBytes_andJoinIntoTheContent() throws Exception {
        JsonNode r = JSON.readTree(post("/v1/chat/completions", "{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":"
                + "\"user\",\"content\":\"Hi there\"}],\"max_tokens\":16,\"temperature\":0,\"logprobs\":true,"
                + "\"top_logprobs\":5}").body());
        ByteArrayOutputStream joined = new ByteArrayOutputStream();
        int partsOfCharacters = 0;
        for (JsonNode entry : r.at("/choices/0/logprobs/content")) {
            byte[] own = bytes(entry);
            joined.writeBytes(own);
            List<JsonNode> all = new ArrayList<>(List.of(entry));
            entry.get("top_logprobs").forEach(all::add);
            for (JsonNode e : all) {
                byte[] b = bytes(e);
                String token = e.get("token").stringValue();
                if (token.contains("\uFFFD")) {
                    partsOfCharacters++;
                    assertThat(validUtf8(b)).as(e.toString()).isFalse();
                    assertThat(new String(b, StandardCharsets.ISO_8859_1)).as(e.toString()).doesNotContain("\u00EF\u00BF\u00BD");
                } else if (b.length == 0) {
                    assertThat(token).as("only a special token has no bytes").isIn("<s>", "</s>", "<unk>");
                } else {
                    assertThat(new String(b, StandardCharsets.UTF_8)).isEqualTo(token);
                }
            }
        }
        assertThat(partsOfCharacters).as("the model's answer or its alternatives hold parts of characters").isPositive();
        assertThat(new String(joined.toByteArray(), StandardCharsets.UTF_8))
                .isEqualTo(r.at("/choices/0/message/content").stringValue());
    }

    private static byte[] bytes(JsonNode entry) {
        JsonNode list = entry.get("bytes");
        byte[] out = new byte[list.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) list.get(i).intValue();
        }
        return out;
    }

    private static boolean validUtf8(byte[] b) {
        try {
            StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(b));
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }

    @Test
    void models_listsTheServedModel() throws Exception {
        JsonNode r = JSON.readTree(HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/models"))
                .build(), HttpResponse.BodyHandlers.ofString()).body());
        assertThat(r.at("/data/0/id").stringValue()).isEqualTo(MODEL);
    }

    @ParameterizedTest(name = "{2}")
    @CsvSource(delimiter = '|', value = {
        "/v1/completions      | {\"model\":\"MODEL\",\"prompt\":\"x\",\"frequency_penalty\":0.5}     | 400 | frequency_penalty",
        "/v1/completions      | {\"model\":\"MODEL\",\"prompt\":\"x\",\"n\":2}                        | 400 | unsupported parameter(s): n",
        "/v1/chat/completions | {\"model\":\"MODEL\",\"messages\":[],\"tools\":[{\"type\":\"f\"}]}    | 400 | tools",
        "/v1/completions      | {\"model\":\"nope\",\"prompt\":\"x\"}                                 | 404 | does not exist",
        "/v1/completions      | {\"model\":\"MODEL\",\"prompt\":\"x\",\"temperature\":5}              | 400 | temperature",
        "/v1/completions      | {\"model\":\"MODEL\",\"prompt\":\"x\",\"logprobs\":9}                 | 400 | logprobs",
        "/v1/completions      | {\"model\":\"MODEL\",\"prompt\":\"x\",\"max_tokens\":0}               | 400 | max_tokens",
        "/v1/completions      | {\"model\":\"MODEL\"                                                   | 400 | not valid JSON",
        "/v1/chat/completions | {\"model\":\"MODEL\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]} | 400 | role",
        "/v1/completions      | {\"prompt\":\"x\"}                                                     | 400 | model is required",
    })
    void badRequest_openAiErrorJson_withStatusAndMessage(String path, String body, int status, String message)
            throws Exception {
        HttpResponse<String> r = post(path, body.replace("MODEL", MODEL));
        assertThat(r.statusCode()).isEqualTo(status);
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertThat(e.get("message").stringValue()).contains(message);
        assertThat(e.has("type")).isTrue();
    }

    @Test
    void promptLongerThanContext_is400ContextLengthExceeded() throws Exception {
        HttpResponse<String> r = post("/v1/completions", "{\"model\":\"" + MODEL + "\",\"prompt\":\"" + "word ".repeat(600) + "\"}");
        assertThat(r.statusCode()).isEqualTo(400);
        assertThat(JSON.readTree(r.body()).at("/error/code").stringValue()).isEqualTo("context_length_exceeded");
    }
}
