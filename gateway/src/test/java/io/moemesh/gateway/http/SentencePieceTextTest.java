package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.tokenizer.Tokenizer;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The text of a model with a SentencePiece tokenizer (Mixtral's, Llama's: a word's token is "▁word" and the decoder
 * strips one leading space at the start of a text) is the completion's text in the prompt's context, as vLLM's:
 * the first generated word keeps its space (" a" after "x is", where a decode of the generated ids alone gives "a"),
 * over HTTP and gRPC, streamed or not, and the tokens' logprob bytes join into it.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SentencePieceTextTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private static final Path DIR = sentencePieceModel();
    private static final String MODEL = DIR.getFileName().toString();
    private static final Tokenizer TOKENIZER = Tokenizer.load(DIR.resolve("tokenizer.json"));

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", DIR::toString);
        r.add("moemesh.gateway.grpc-port", () -> "0");
    }

    /**
     * The tiny Mixtral's weights (vocab 512) with a llama-style tokenizer of 512 ids: the specials at the tiny
     * model's ids, "▁", a-z, the prompt's words, and "▁w0"... filling the rest, so that the random weights mostly
     * generate words that start with "▁".
     */
    private static Path sentencePieceModel() {
        try {
            Path dir = Files.createTempDirectory(Files.createDirectories(Path.of("target")), "sentencepiece")
                    .resolve("mixtral-sentencepiece");
            Files.createDirectories(dir);
            Path source = TestModels.dir(TestModels.MIXTRAL);
            for (String f : new String[] {"config.json", "model.safetensors"}) {
                Files.copy(source.resolve(f), dir.resolve(f));
            }
            Map<String, Integer> vocab = new LinkedHashMap<>();
            for (String t : new String[] {"<s>", "</s>", "<unk>", "\u2581"}) {
                vocab.put(t, vocab.size());
            }
            for (char c = 'a'; c <= 'z'; c++) {
                vocab.put(String.valueOf(c), vocab.size());
            }
            for (String t : new String[] {"\u2581x", "is", "\u2581is"}) {
                vocab.put(t, vocab.size());
            }
            for (int i = 0; vocab.size() < 512; i++) {
                vocab.put("\u2581w" + i, vocab.size());
            }
            List<Map<String, Object>> added = new ArrayList<>();
            for (int id = 0; id < 3; id++) {
                String content = List.of("<s>", "</s>", "<unk>").get(id);
                added.add(Map.of("id", id, "content", content, "single_word", false, "lstrip", false, "rstrip", false,
                        "normalized", false, "special", true));
            }
            Map<String, Object> tokenizer = new LinkedHashMap<>();
            tokenizer.put("version", "1.0");
            tokenizer.put("added_tokens", added);
            tokenizer.put("normalizer", Map.of("type", "Sequence", "normalizers", List.of(
                    Map.of("type", "Prepend", "prepend", "\u2581"),
                    Map.of("type", "Replace", "pattern", Map.of("String", " "), "content", "\u2581"))));
            tokenizer.put("pre_tokenizer", null);
            Map<String, Object> bpe = new LinkedHashMap<>();
            bpe.put("type", "BPE");
            bpe.put("unk_token", "<unk>");
            bpe.put("fuse_unk", true);
            bpe.put("byte_fallback", false);
            bpe.put("vocab", vocab);
            bpe.put("merges", List.of(List.of("\u2581", "x"), List.of("i", "s"), List.of("\u2581", "is")));
            tokenizer.put("model", bpe);
            tokenizer.put("decoder", Map.of("type", "Sequence", "decoders", List.of(
                    Map.of("type", "Replace", "pattern", Map.of("String", "\u2581"), "content", " "),
                    Map.of("type", "ByteFallback"), Map.of("type", "Fuse"),
                    Map.of("type", "Strip", "content", " ", "start", 1, "stop", 0))));
            Files.writeString(dir.resolve("tokenizer.json"), JSON.writeValueAsString(tokenizer));
            Files.writeString(dir.resolve("tokenizer_config.json"), JSON.writeValueAsString(Map.of(
                    "bos_token", "<s>", "eos_token", "</s>", "unk_token", "<unk>", "add_bos_token", true,
                    "chat_template", "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                            + "{{ 'x ' + message['content'] + ' x' }}{% else %}{{ message['content'] }}{% endif %}"
                            + "{% endfor %}")));
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @LocalServerPort
    int port;
    @Autowired
    GrpcServerLifecycle grpc;
    ManagedChannel channel;

    @BeforeAll
    void connect() {
        channel = NettyChannelBuilder.forAddress("127.0.0.1", grpc.port()).usePlaintext().build();
    }

    @AfterAll
    void disconnect() {
        channel.shutdownNow();
    }

    private JsonNode post(String path, Map<String, Object> body) throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body))).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        if (!Boolean.TRUE.equals(body.get("stream"))) {
            return JSON.readTree(r.body());
        }
        List<JsonNode> events = new ArrayList<>();
        for (String line : r.body().split("\n")) {
            if (line.startsWith("data:") && !line.substring(5).strip().equals("[DONE]")) {
                events.add(JSON.readTree(line.substring(5).strip()));
            }
        }
        return JSON.valueToTree(events);
    }

    private static Map<String, Object> with(Map<String, Object> body, String key, Object value) {
        Map<String, Object> m = new LinkedHashMap<>(body);
        m.put(key, value);
        return m;
    }

    /** decode(prompt + generated) minus decode(prompt): the completion's text in the prompt's context. */
    private static String inContext(int[] prompt, int[] generated) {
        int[] all = IntStream.concat(IntStream.of(prompt), IntStream.of(generated)).toArray();
        return TOKENIZER.decode(all, true).substring(TOKENIZER.decode(prompt, true).length());
    }

    @Test
    void generate_text_isTheCompletionInThePromptsContext_andTokenBytesJoinIntoIt() throws Exception {
        List<GenerateResponse> msgs = new ArrayList<>();
        GatewayServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS).generate(
                GenerateRequest.newBuilder().setPrompt("x is").setTrace(true).setSampling(SamplingParams.newBuilder()
                        .setMaxTokens(8).setLogprobs(1).setIgnoreEos(true)).build()).forEachRemaining(msgs::add);
        int[] prompt = msgs.getLast().getTrace().getInputIdsList().stream().mapToInt(Integer::intValue).toArray();
        int[] generated = msgs.stream().flatMap(m -> m.getTokenIdsList().stream()).mapToInt(Integer::intValue)
                .toArray();
        String expected = inContext(prompt, generated);
        assertThat(TOKENIZER.token(generated[0])).as("the first generated token is a word").startsWith("\u2581");
        assertThat(expected).startsWith(" ");
        assertThat(String.join("", msgs.stream().map(GenerateResponse::getText).toList())).isEqualTo(expected);
        ByteArrayOutputStream joined = new ByteArrayOutputStream();
        msgs.stream().flatMap(m -> m.getLogprobsList().stream()).forEach(lp -> joined.writeBytes(
                lp.getTokenBytes().toByteArray()));
        assertThat(joined.toString(StandardCharsets.UTF_8)).isEqualTo(expected);

        Map<String, Object> body = Map.of("model", MODEL, "prompt", "x is", "max_tokens", 8, "temperature", 0,
                "ignore_eos", true, "logprobs", 0);
        JsonNode whole = post("/v1/completions", body).at("/choices/0");
        assertThat(whole.get("text").stringValue()).isEqualTo(expected);
        StringBuilder tokens = new StringBuilder();
        whole.at("/logprobs/tokens").forEach(t -> tokens.append(t.stringValue()));
        assertThat(tokens.toString()).as("the tokens join into the text").isEqualTo(expected);
        StringBuilder streamed = new StringBuilder();
        post("/v1/completions", with(body, "stream", true)).forEach(e -> streamed.append(
                e.at("/choices/0/text").stringValue()));
        assertThat(streamed.toString()).isEqualTo(expected);
    }

    /** The chat content keeps its first word's space, streamed or not, and the logprobs' bytes join into it. */
    @Test
    void chat_content_keepsTheFirstWordsSpace_andLogprobBytesJoinIntoIt() throws Exception {
        List<Map<String, Object>> questions = List.of(
                Map.of("role", "user", "content", "is"));
        List<Map<String, Object>> continued = List.of(
                Map.of("role", "user", "content", "is"), Map.of("role", "assistant", "content", "x is"));
        for (List<Map<String, Object>> messages : List.of(questions, continued)) {
            Map<String, Object> body = new LinkedHashMap<>(Map.of("model", MODEL, "messages", messages,
                    "max_tokens", 8, "temperature", 0, "ignore_eos", true, "logprobs", true, "top_logprobs", 1));
            if (messages == continued) {
                body.put("add_generation_prompt", false);
                body.put("continue_final_message", true);
            }
            JsonNode choice = post("/v1/chat/completions", body).at("/choices/0");
            String content = choice.at("/message/content").stringValue();
            assertThat(content).as("%s", messages).startsWith(" ");
            ByteArrayOutputStream joined = new ByteArrayOutputStream();
            for (JsonNode entry : choice.at("/logprobs/content")) {
                entry.get("bytes").forEach(b -> joined.write(b.intValue()));
            }
            assertThat(joined.toString(StandardCharsets.UTF_8)).as("%s", messages).isEqualTo(content);
            StringBuilder streamed = new StringBuilder();
            post("/v1/chat/completions", with(body, "stream", true)).forEach(e -> {
                JsonNode c = e.at("/choices/0/delta/content");
                streamed.append(c.isMissingNode() ? "" : c.stringValue());
            });
            assertThat(streamed.toString()).as("%s", messages).isEqualTo(content);
        }
    }
}
