package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * GET /v1/models/{id} for the ids clients send (ModelIdPath): the official openai npm client percent-encodes the id
 * ({@code org/name} as {@code org%2Fname}, a space as {@code %20}, other characters as UTF-8 bytes), a client that
 * does not encode sends {@code org/name} as two segments. Each gets the served model or 404 {@code model_not_found} in
 * OpenAI's error JSON, after the API key check; an escape anywhere else, or one that decodes to a path the container
 * rewrites (dot, empty segments, a parameter), is still 400 {@code invalid_path}. Raw sockets, so no client normalises
 * the path first. The served model is the tiny Mixtral under a name with a space and, where file names can hold
 * it, a non-ASCII letter.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class ModelRetrieveHttpTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final String KEY = "sk-alice-123";
    /** The served model's id: its directory's name ('ï' only where the platform's file names can hold it). */
    private static final String NAME = Charset.forName(System.getProperty("sun.jnu.encoding", "UTF-8")).newEncoder()
            .canEncode("ï") ? "Mïxtral tiny" : "Mixtral tiny";
    private static final Path DIR = servedAs(NAME);

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", DIR::toString);
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.api-keys", () -> KEY + ":alice");
    }

    /** The link and its temporary folder go with the class: each run makes new ones in target. */
    @AfterAll
    static void removeTheLink() throws IOException {
        Files.deleteIfExists(DIR); // the link only, not the model it points to
        Files.deleteIfExists(DIR.getParent());
    }

    /** The tiny Mixtral through a link named {@code name}: the gateway serves a model by its directory's name. */
    private static Path servedAs(String name) {
        try {
            Path link = Files.createTempDirectory(Files.createDirectories(Path.of("target")), "model-id").resolve(name);
            return Files.createSymbolicLink(link, TestModels.dir(TestModels.MIXTRAL).toAbsolutePath());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @LocalServerPort
    int port;

    /** The whole answer of one request sent exactly as given. */
    private String send(String method, String path, String key, String body) throws Exception {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(30_000);
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            OutputStream out = s.getOutputStream();
            out.write((method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    + (body.isEmpty() ? "" : "Content-Type: application/json\r\n")
                    + (key == null ? "" : "Authorization: Bearer " + key + "\r\n") + "Content-Length: " + bytes.length
                    + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(bytes);
            out.flush();
            return new String(s.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static int status(String answer) {
        return Integer.parseInt(answer.substring(9, 12));
    }

    /** The JSON body of an answer, chunked or not (a chunk's size line is outside the braces). */
    private static JsonNode body(String answer) {
        String body = answer.substring(answer.indexOf("\r\n\r\n") + 4);
        return JSON.readTree(body.substring(body.indexOf('{'), body.lastIndexOf('}') + 1));
    }

    /**
     * As JavaScript's encodeURIComponent: all but A-Za-z0-9-_.!~*'() (the npm client leaves a few more characters as
     * they are, such as ';' and ':', and encodes '/', a space and non-ASCII characters as this does).
     */
    private static String encodeComponent(String s) {
        StringBuilder b = new StringBuilder();
        for (byte x : s.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (x & 0xff);
            if (c < 0x80 && (Character.isLetterOrDigit(c) || "-_.!~*'()".indexOf(c) >= 0)) {
                b.append(c);
            } else {
                b.append(String.format("%%%02X", x & 0xff));
            }
        }
        return b.toString();
    }

    @Test
    void servedModel_retrievedByItsPercentEncodedId_afterTheKeyCheck() throws Exception {
        String path = "/v1/models/" + encodeComponent(NAME);
        assertThat(path).contains("%20");
        String answer = send("GET", path, KEY, "");
        assertThat(status(answer)).as(answer).isEqualTo(200);
        JsonNode m = body(answer);
        assertThat(m.get("id").stringValue()).isEqualTo(NAME);
        assertThat(m).isEqualTo(body(send("GET", "/v1/models", KEY, "")).at("/data/0"));

        String anonymous = send("GET", path, null, "");
        assertThat(status(anonymous)).as(anonymous).isEqualTo(401);
        assertThat(body(anonymous).at("/error/code").stringValue()).isEqualTo("invalid_api_key");
    }

    @Test
    void otherIds_encodedOrOfSeveralSegments_are404ModelNotFound_inOpenAiErrorJson() throws Exception {
        for (String id : List.of("mistralai/Mixtral-8x7B-Instruct-v0.1", "café au lait", "a;b", NAME + "/x", "ï")) {
            for (String path : List.of("/v1/models/" + encodeComponent(id),
                    "/v1/models/" + encodeComponent(id).replace("%2F", "/"))) {
                String answer = send("GET", path, KEY, "");
                assertThat(status(answer)).as(path + ": " + answer).isEqualTo(404);
                JsonNode e = body(answer).get("error");
                assertThat(e.get("code").stringValue()).as(path).isEqualTo("model_not_found");
                assertThat(e.get("message").stringValue()).as(path).contains("`" + id + "`");
            }
        }
    }

    /**
     * The escapes let through after /v1/models/ cannot reach another handler or skip the checks: an id that decodes
     * to a path the container rewrites (dot or empty segments, also ones spelt %2F and %2E, a parameter) is 400, as
     * an escape anywhere else is, with a valid key and a valid body alike.
     */
    @Test
    void escapesOutsideAModelId_orDecodingToARewrittenPath_are400InvalidPath() throws Exception {
        String completion = "{\"model\":\"" + NAME + "\",\"prompt\":\"x\",\"max_tokens\":1}";
        for (String path : List.of("/v1/models/x%2F..%2F..%2Fcompletions", "/v1/models/%2E%2E/completions",
                "/v1/models/..%2Fcompletions", "/v1/models/x%2F%2Fy", "/v1/models/x%2F.%2Fy", "/v1/models/a;b",
                "/v1/models//x", "/v1%2Fmodels/x", "/v1/model%73/x", "/v1/models%2Fx", "/v1/completions%2F")) {
            for (String method : List.of("GET", "POST")) {
                String answer = send(method, path, KEY, method.equals("POST") ? completion : "");
                assertThat(status(answer)).as(method + " " + path + ": " + answer).isEqualTo(400);
                assertThat(body(answer).at("/error/code").stringValue()).as(path).isEqualTo("invalid_path");
            }
        }
    }
}
