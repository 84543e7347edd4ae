package io.moemesh.cli.bench.serve;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.bench.serve.BenchServeEndToEndTest.Run;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code bench serve} against a port nothing listens on (loopback port 1): one line naming it and the cause. */
class UnreachableServerTest {
    private static final String NOWHERE = "127.0.0.1:1";

    @ParameterizedTest(name = "{0}")
    @CsvSource({
        "openai, --endpoint http://127.0.0.1:1/v1: GET /v1/models failed: connection refused",
        "grpc,   --endpoint 127.0.0.1:1: gRPC ModelInfo failed: UNAVAILABLE (connection refused)",
    })
    void unreachableEndpoint_exitsWith2_withOneLineNamingTheEndpointAndTheCause(String backend, String line) {
        Run run = BenchServeEndToEndTest.bench("--endpoint", NOWHERE, "--backend", backend, "--random-input", "4");
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err().strip()).isEqualTo("moemesh serve: " + line);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({
        "openai, connection: connection refused",
        "grpc,   gRPC UNAVAILABLE (connection refused)",
    })
    void requestToAnUnreachableEndpoint_failsNamingTheCause(String backend, String error) throws Exception {
        Endpoint ep = Endpoint.parse(NOWHERE);
        try (StreamingBackend server = backend.equals("grpc") ? new GrpcBackend(ep, null)
                : new OpenAiBackend(ep.openAiBase(), null)) {
            RequestOutcome r = server.send(new StreamingBackend.RequestSpec("m", 0, true),
                    new BenchPrompt("hi", new int[] {1, 2}, 2, 4, false));
            assertThat(r.success()).isFalse();
            assertThat(r.error()).isEqualTo(error);
        }
    }
}
