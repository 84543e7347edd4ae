package io.moemesh.cli.bench.serve;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.Main;
import io.moemesh.model.golden.TestModels;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** {@code moemesh bench serve} against a fake OpenAI server on a real loopback socket. */
class BenchServeEndToEndTest {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    Path tmp;

    record Run(int exitCode, String out, String err) {
    }

    static Run bench(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cmd = Main.commandLine();
        cmd.setOut(new PrintWriter(out, true));
        cmd.setErr(new PrintWriter(err, true));
        String[] all = new String[args.length + 2];
        all[0] = "bench";
        all[1] = "serve";
        System.arraycopy(args, 0, all, 2, args.length);
        int code = cmd.execute(all);
        return new Run(code, out.toString(), err.toString());
    }

    /** The value printed after a row label of the table. */
    static String row(String table, String label) {
        return table.lines().filter(l -> l.startsWith(label)).findFirst()
                .map(l -> l.substring(label.length()).strip())
                .orElseThrow(() -> new AssertionError(label + "\n" + table));
    }

    @Test
    void randomWorkload_printsVllmTable_countsRejections_writesJson() throws Exception {
        Path json = tmp.resolve("result.json");
        try (FakeOpenAiServer server = new FakeOpenAiServer("sekret", 4096, 4)) {
            Run run = bench("--endpoint", server.url(), "--api-key", "sekret", "--random-input", "20",
                    "--random-output", "5", "--num-prompts", "10", "--max-concurrency", "4", "--goodput",
                    "ttft:600000", "e2el:600000", "--json", json.toString());

            assertThat(run.exitCode()).as(run.err()).isZero();
            String t = run.out();
            assertThat(t).contains("============ Serving Benchmark Result ============");
            // 11 completions (the initial test request + 10): the 4th and 8th are rejected with 429.
            assertThat(row(t, "Successful requests:")).isEqualTo("8");
            assertThat(row(t, "Failed requests:")).isEqualTo("2");
            assertThat(row(t, "  HTTP 429, Retry-After 1:")).isEqualTo("2");
            assertThat(row(t, "Clipped requests (context 4096):")).isEqualTo("0");
            assertThat(row(t, "Total generated tokens:")).isEqualTo("40");
            assertThat(row(t, "Total input tokens:")).isEqualTo("160"); // usage.prompt_tokens: 19 words + 1
            assertThat(row(t, "Request goodput (req/s):")).isEqualTo(row(t, "Request throughput (req/s):"));
            for (String label : new String[] {"Mean TTFT (ms):", "Median TPOT (ms):", "P90 ITL (ms):",
                "P99 E2EL (ms):", "Output token throughput (tok/s):", "Input token throughput (tok/s):"}) {
                assertThat(Double.parseDouble(row(t, label))).as(label).isPositive();
            }
            assertThat(server.bodies).hasSize(11).allSatisfy(b -> {
                assertThat(b.path("model").asString()).isEqualTo("fake-moe");
                assertThat(b.path("stream").asBoolean()).isTrue();
                assertThat(b.path("stream_options").path("include_usage").asBoolean()).isTrue();
                assertThat(b.path("ignore_eos").asBoolean()).isTrue();
                assertThat(b.path("temperature").asDouble()).isZero();
            });
            assertThat(server.bodies.subList(1, 11))
                    .allSatisfy(b -> assertThat(b.path("max_tokens").asInt()).isEqualTo(5));
            assertThat(server.authorizations).containsOnly("Bearer sekret");
            assertThat(run.err()).contains("no --tokenizer");
        }
        JsonNode j = JSON.readTree(json.toFile());
        assertThat(j.path("completed").asInt()).isEqualTo(8);
        assertThat(j.path("failed").asInt()).isEqualTo(2);
        assertThat(j.path("total_output_tokens").asInt()).isEqualTo(40);
        assertThat(j.path("request_goodput").asDouble()).isPositive();
        assertThat(j.path("p99_itl_ms").asDouble()).isPositive();
        assertThat(j.path("backend").asString()).isEqualTo("openai");
    }

    @Test
    void requestsLongerThanTheContext_areClippedAndCounted() {
        try (FakeOpenAiServer server = new FakeOpenAiServer(null, 256, 0)) {
            Run run = bench("--endpoint", server.url() + "/v1", "--random-input", "300", "--random-output", "10",
                    "--num-prompts", "6", "--request-rate", "1000", "--seed", "3");

            assertThat(run.exitCode()).as(run.err()).isZero();
            assertThat(row(run.out(), "Clipped requests (context 256):")).isEqualTo("6");
            assertThat(row(run.out(), "Successful requests:")).isEqualTo("6");
            // 300 + 10 > 256: the prompt keeps 246 tokens (245 words + BOS), the completion its 10.
            assertThat(server.bodies.subList(1, 7)).allSatisfy(b -> {
                assertThat(b.path("max_tokens").asInt()).isEqualTo(10);
                assertThat(b.path("prompt").asString().split(" ")).hasSize(245);
            });
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void azureTraceReplay_and_shareGptWithTokenizer() throws Exception {
        Path tokenizer = TestModels.dir(TestModels.MIXTRAL);
        try (FakeOpenAiServer server = new FakeOpenAiServer(null, 256, 0)) {
            Run trace = bench("--endpoint", server.url(), "--trace-file",
                    WorkloadSourcesTest.resource("azure_tiny.csv").toString(), "--speedup", "100", "--tokenizer",
                    tokenizer.toString());
            assertThat(trace.exitCode()).as(trace.err()).isZero();
            assertThat(row(trace.out(), "Successful requests:")).isEqualTo("4");
            assertThat(row(trace.out(), "Clipped requests (context 256):")).isEqualTo("2");
            assertThat(row(trace.out(), "Total generated tokens:")).isEqualTo(Integer.toString(20 + 216 + 10 + 5));
            assertThat(trace.err()).doesNotContain("no --tokenizer");

            Run share = bench("--endpoint", server.url(), "--sharegpt",
                    WorkloadSourcesTest.resource("sharegpt_tiny.json").toString(), "--num-prompts", "5",
                    "--sharegpt-output-len", "3", "--tokenizer", tokenizer.toString());
            assertThat(share.exitCode()).as(share.err()).isZero();
            assertThat(row(share.out(), "Successful requests:")).isEqualTo("5");
            assertThat(row(share.out(), "Total generated tokens:")).isEqualTo("15");
        }
    }

    @Test
    void badInput_exitsWith2_namingTheProblem() throws Exception {
        try (FakeOpenAiServer server = new FakeOpenAiServer("right", 256, 0)) {
            Run wrongKey = bench("--endpoint", server.url(), "--api-key", "wrong", "--random-input", "4");
            assertThat(wrongKey.exitCode()).isEqualTo(2);
            assertThat(wrongKey.err()).contains("HTTP 401").contains("--api-key");

            Run noWorkload = bench("--endpoint", server.url());
            assertThat(noWorkload.exitCode()).isEqualTo(2);
            assertThat(noWorkload.err()).contains("give a workload");

            Run badSlo = bench("--endpoint", server.url(), "--random-input", "4", "--goodput", "itl:5");
            assertThat(badSlo.exitCode()).isEqualTo(2);
            assertThat(badSlo.err()).contains("unknown metric itl");
        }
    }
}
