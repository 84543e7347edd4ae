package io.moemesh.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.grpc.InsecureServerCredentials;
import io.moemesh.cli.mesh.FakeGateway;
import io.moemesh.model.MoeModel;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * {@code generate --endpoint} against a gateway stand-in that streams the reference engine's output over real
 * gRPC: the client side of the mesh (the real mesh is tested in e2e/).
 */
class GenerateEndpointTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static MoeModel model;
    private static GrpcServerLifecycle server;
    private static String endpoint;

    @BeforeAll
    static void startFakeGateway() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL_BF16));
        server = new GrpcServerLifecycle("fake-gateway", "127.0.0.1", 0, InsecureServerCredentials.create(), 64 << 20,
                Duration.ofSeconds(1), List.of(new FakeGateway(model)), List.of());
        server.start();
        endpoint = "127.0.0.1:" + server.port();
    }

    @AfterAll
    static void stop() {
        server.stop();
        model.close();
    }

    @Test
    void jsonTrace_isTheSameLineAsWithModel() {
        String dir = TestModels.dir(TestModels.MIXTRAL_BF16).toString();
        for (GoldenCase g : GoldenCase.load(TestModels.MIXTRAL_BF16)) {
            CliRun local = CliRun.of("generate", "--model", dir, "--prompt", g.prompt(), "--json", "--trace");
            CliRun mesh = CliRun.of("generate", "--endpoint", endpoint, "--prompt", g.prompt(), "--json", "--trace");
            assertThat(mesh.exitCode()).as(mesh.err()).isZero();
            assertSameLine(mesh.lastLine(), local.lastLine());
        }
    }

    /**
     * The same fields in the same order with the same values; logits only within float noise, because the
     * engine's own logits move in the last bits between interpreted and JIT-compiled (vectorised) kernels.
     */
    private static void assertSameLine(String actual, String expected) {
        JsonNode a = JSON.readTree(actual);
        JsonNode e = JSON.readTree(expected);
        assertThat(a.propertyNames()).containsExactlyElementsOf(e.propertyNames());
        for (String field : e.propertyNames()) {
            if (field.equals("last_logits")) {
                assertThat(a.get(field).size()).isEqualTo(e.get(field).size());
                for (int i = 0; i < e.get(field).size(); i++) {
                    assertThat(a.get(field).get(i).floatValue()).as("last_logits[%d]", i)
                            .isCloseTo(e.get(field).get(i).floatValue(), within(1e-5f));
                }
            } else {
                assertThat(a.get(field)).as(field).isEqualTo(e.get(field));
            }
        }
    }

    @Test
    void json_withoutTrace_isTheSameLineAsWithModel() {
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL_BF16).get(1);
        String dir = TestModels.dir(TestModels.MIXTRAL_BF16).toString();
        assertThat(CliRun.of("generate", "--endpoint", endpoint, "--prompt", g.prompt(), "--json").out())
                .isEqualTo(CliRun.of("generate", "--model", dir, "--prompt", g.prompt(), "--json").out());
        // (no logits without --trace: the lines are byte for byte the same)
    }

    @Test
    void plainText_streamsTheDeltas_andNamesTheRequestOnStderr() {
        GoldenCase g = GoldenCase.load(TestModels.MIXTRAL_BF16).get(2);
        CliRun run = CliRun.of("generate", "--endpoint", endpoint, "--prompt", g.prompt());
        assertThat(run.exitCode()).isZero();
        assertThat(run.out()).isEqualTo(g.greedyText() + System.lineSeparator());
        assertThat(run.err()).contains("request fake-1 on " + endpoint).contains(g.inputIds().length + " prompt tokens");
    }

    @ParameterizedTest(name = "{0} -> exit {1}")
    @CsvSource({
        "fail:INVALID_ARGUMENT, 2, INVALID_ARGUMENT: scripted failure",
        "fail:UNAVAILABLE,      3, UNAVAILABLE: scripted failure",
        "fail:NOT_FOUND,        1, NOT_FOUND: scripted failure",
        "late:UNAVAILABLE,      3, UNAVAILABLE: no healthy replica of layer 1 expert 3",
        "drain:UNAVAILABLE,     3, UNAVAILABLE: the gateway cancelled the request while draining (shutting down) after 1 token(s)",
    })
    void grpcErrors_printOneLineWithTheCode_andExitByCode(String prompt, int exit, String line) {
        CliRun run = CliRun.of("generate", "--endpoint", endpoint, "--prompt", prompt);
        assertThat(run.exitCode()).isEqualTo(exit);
        assertThat(run.err()).contains("moemesh generate: " + line).doesNotContain("\tat ");
    }

    /** "UNAVAILABLE: io exception" alone named neither the gateway tried nor why it could not be reached. */
    @Test
    void unreachableGateway_namesTheEndpointAndTheCause_andExitsWith3() throws java.io.IOException {
        int closed;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            closed = s.getLocalPort();
        }
        CliRun run = CliRun.of("generate", "--endpoint", "127.0.0.1:" + closed, "--prompt", "hi");
        assertThat(run.exitCode()).isEqualTo(3);
        assertThat(run.err()).contains("moemesh generate: UNAVAILABLE: gateway not reachable at 127.0.0.1:" + closed)
                .contains("Connection refused").doesNotContain("\tat ");
    }

    @ParameterizedTest(name = "{1}")
    @CsvSource(delimiter = '|', value = {
        "--endpoint http://127.0.0.1:1 --prompt hi                    | HOST:PORT",
        "--endpoint 127.0.0.1 --prompt hi                             | HOST:PORT",
        "--endpoint 127.0.0.1:1 --model models/x --prompt hi          | mutually exclusive",
        "--prompt hi                                                  | --endpoint",
        "--endpoint 127.0.0.1:1 --prompt hi --temperature -1          | temperature",
    })
    void badInput_exitsWith2(String args, String message) {
        CliRun run = CliRun.of(("generate " + args.strip()).split("\\s+"));
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err()).contains(message).doesNotContain("\tat ");
    }

    @Test
    void help_documentsTheExitCodes() {
        CliRun run = CliRun.of("generate", "--help");
        assertThat(run.out()).contains("--endpoint=HOST:PORT").contains("Exit codes:").contains("UNAVAILABLE")
                .contains("INVALID_ARGUMENT");
    }
}
