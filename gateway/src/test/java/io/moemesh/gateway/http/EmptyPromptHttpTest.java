package io.moemesh.gateway.http;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A model whose tokenizer adds no BOS (a Qwen2-MoE checkpoint as published: tokenizer_config.json with bos_token
 * null): an empty prompt has no token to generate from, a 400 naming prompt.
 */
@SpringBootTest(webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class EmptyPromptHttpTest {
    private static final Path DIR = withoutBos();
    private static final String MODEL = DIR.getFileName().toString();
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final HttpClient HTTP = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();

    @DynamicPropertySource
    static void props(DynamicPropertyRegistry r) {
        r.add("moemesh.gateway.model-dir", DIR::toString);
        r.add("moemesh.gateway.grpc-port", () -> "0");
    }

    /**
     * The bundled qwen2moe-tiny (which keeps config.json's BOS, the convention of its reference outputs) with the
     * tokenizer_config.json of the published checkpoints, which makes its tokenizer add none.
     */
    private static Path withoutBos() {
        try {
            Path dir = Files.createTempDirectory(Files.createDirectories(Path.of("target")), "no-bos")
                    .resolve("qwen2moe-no-bos");
            Files.createDirectories(dir);
            Path source = TestModels.dir(TestModels.QWEN2_MOE);
            for (String f : new String[] {"config.json", "tokenizer.json", "model.safetensors"}) {
                Files.copy(source.resolve(f), dir.resolve(f));
            }
            Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": null, \"eos_token\": \"</s>\"}");
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @LocalServerPort
    int port;

    private HttpResponse<String> post(String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void emptyPrompt_ofAModelWithoutBos_is400NamingPrompt() throws Exception {
        for (String prompt : new String[] {"\"\"", "[\"\"]"}) {
            HttpResponse<String> r = post("{\"model\":\"" + MODEL + "\",\"max_tokens\":1,\"prompt\":" + prompt + "}");
            assertThat(r.statusCode()).as(r.body()).isEqualTo(400);
            JsonNode e = JSON.readTree(r.body()).get("error");
            assertThat(e.get("param").stringValue()).as(r.body()).isEqualTo("prompt");
            assertThat(e.get("message").stringValue()).contains("no tokens").contains("adds no BOS");
        }
        assertThat(post("{\"model\":\"" + MODEL + "\",\"max_tokens\":1,\"prompt\":\"a\"}").statusCode()).isEqualTo(200);
    }
}
