package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;

/**
 * The API key and the body limit apply to every path Spring routes to the API, not only to raw URIs that start
 * with {@code /v1/}: path parameters, percent-escapes, doubled slashes and dot segments are refused (400) or
 * authenticated (401), never answered (PublicApiFilter). Raw sockets, so no client normalises the path first.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class PublicApiPathTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final int MAX_BYTES = 64 << 10;

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(MODEL).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("moemesh.gateway.api-keys", () -> "sk-alice-123:alice");
        r.add("moemesh.gateway.admission.max-request-bytes", () -> String.valueOf(MAX_BYTES));
    }

    @LocalServerPort
    int port;

    private static String body(String prompt) {
        return "{\"model\":\"" + MODEL + "\",\"prompt\":\"" + prompt + "\",\"max_tokens\":2}";
    }

    /** The whole answer of one request sent exactly as given. */
    private String send(String method, String path, String key, String body) throws Exception {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(30_000);
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            OutputStream out = s.getOutputStream();
            out.write((method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
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

    @Test
    void disguisedApiPaths_withoutKey_areRefused_neverAnswered() throws Exception {
        for (String path : List.of("/v1;x=1/completions", "/%761/completions", "/v1/completions;x",
                "//v1/completions", "/v1//completions", "/./v1/completions", "/x/../v1/completions",
                "/V1/completions", "/v1%2Fcompletions", "/%2576%2531/completions")) {
            String answer = send("POST", path, null, body("x"));
            assertThat(status(answer)).as(path + ": " + answer).isIn(400, 401, 404);
        }
        for (String path : List.of("/v1;x/models", "/%76%31/models", "//v1/models")) {
            String answer = send("GET", path, null, "");
            assertThat(status(answer)).as(path + ": " + answer).isIn(400, 401, 404);
        }
    }

    @Test
    void pathWithParameters_isRefusedAs400_evenWithAValidKey() throws Exception {
        String answer = send("POST", "/v1;x=1/completions", "sk-alice-123", body("x"));
        assertThat(status(answer)).isEqualTo(400);
        assertThat(answer).contains("\"invalid_path\"");
        assertThat(status(send("POST", "/v1/completions", "sk-alice-123", body("x")))).isEqualTo(200);
    }

    /** A valid request padded with whitespace past the limit: only the body limit can refuse it. */
    @Test
    void bodyOverTheLimit_onADisguisedPath_isNever200() throws Exception {
        String padded = body("x").replace("}", " ".repeat(MAX_BYTES) + "}");
        for (String path : List.of("/v1;a/completions", "/%761/completions")) {
            String answer = send("POST", path, "sk-alice-123", padded);
            assertThat(status(answer)).as(path).isIn(400, 413);
        }
    }
}
