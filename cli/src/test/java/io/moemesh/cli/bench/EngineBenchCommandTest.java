package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class EngineBenchCommandTest {
    @TempDir
    Path models;

    private static String[] run(String... args) {
        CliRun r = CliRun.of(args);
        return new String[] {Integer.toString(r.exitCode()), r.out(), r.err()};
    }

    @Test
    void benchEngine_printsOneMarkdownRowPerModelAndDtype_withACellPerScenario() {
        String[] r = run("bench", "engine", "--models", "S", "--dtypes", "bf16", "--repeats", "1",
                "--prompt-tokens", "8", "--concurrency", "1,2", "--decode-prompt", "4", "--decode-tokens", "2",
                "--models-dir", models.toString());
        assertThat(r[0]).as(r[2]).isEqualTo("0");
        assertThat(r[1]).contains("| model | weights | prefill 8 | decode 1 seq | decode 2 seqs |");
        assertThat(r[1].lines().filter(l -> l.startsWith("| S | bf16 | ")).findFirst().orElseThrow().split("\\|"))
                .hasSize(6);
        assertThat(models.resolve("S-bf16").resolve("config.json")).exists();
    }

    @Test
    void benchPrefix_timesTheSamePromptAsAMissThenAHit_andReportsTheCachedTokensAndTheRatio() {
        String[] r = run("bench", "prefix", "--model", "S", "--prompt-tokens", "40", "--repeats", "2",
                "--step-token-budget", "16", "--models-dir", models.toString());
        assertThat(r[0]).as(r[2]).isEqualTo("0");
        assertThat(r[1]).contains("| model | prompt tokens | TTFT miss, ms | TTFT hit, ms | cached tokens | hit ÷ miss |");
        // 40 tokens = 2 full blocks of 16 and 8 more: both full blocks come from the cache on the second run
        assertThat(r[1].lines().filter(l -> l.startsWith("| S f32 | 40 | ")).findFirst().orElseThrow())
                .matches("\\| S f32 \\| 40 \\| [\\d.]+( \\([\\d.]+–[\\d.]+\\))? \\| [\\d.]+( \\([\\d.]+–[\\d.]+\\))? \\| 32 "
                        + "\\| [\\d.]+ \\([\\d.]+–[\\d.]+\\) \\|");
    }

    @Test
    void benchKernels_runsJmh_andPrintsTheKernelAgainstSgemm_andTheStreamAgainstTheReadBandwidth() {
        String[] r = run("bench", "kernels", "--quick", "--tokens", "1,8", "--hidden", "128", "--intermediate", "256");
        assertThat(r[0]).as(r[2]).isEqualTo("0");
        assertThat(r[1]).contains("| tokens | ours, bf16 weights | ours, f32 weights | OpenBLAS sgemm, f32 | bf16 / sgemm "
                + "| f32 / sgemm |");
        for (String tokens : new String[] {"1", "8"}) {
            String row = r[1].lines().filter(l -> l.startsWith("| " + tokens + " | ")).findFirst().orElseThrow();
            // GFLOP/s ± error for the three kernels, then two percentages: every cell measured, none missing
            assertThat(row).doesNotContain("–").matches("\\| " + tokens
                    + "( \\| [\\d.]+( ± [\\d.]+)?){3} \\| \\d+% \\| \\d+% \\|");
        }
        assertThat(r[1]).containsPattern("Weights streamed at 1 token \\(bf16\\): [\\d.]+ GB/s; plain memory read, same run: "
                + "[\\d.]+( ± [\\d.]+)? GB/s; ratio \\d+%");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "engine --models XL | unknown bench model XL",
            "engine --dtypes f8 | f8",
            "engine --repeats 0 | --repeats must be at least 1, got 0",
            "engine --concurrency 1,0 | --concurrency must be at least 1, got 0",
            "engine --prompt-tokens 5000 | must fit the bench models' 4096 positions",
            "prefix --model XL | unknown bench model XL",
            "prefix --prompt-tokens 1 | --prompt-tokens must be between 2 and 4095",
            "prefix --prompt-tokens 4096 | --prompt-tokens must be between 2 and 4095",
            "prefix --repeats 0 | --repeats must be at least 1, got 0",
            "prefix --step-token-budget 0 | --step-token-budget must be at least 1, got 0",
            "kernels --tokens 1,x | --tokens takes whole numbers, got \"x\"",
            "kernels --tokens -4 | --tokens must be at least 1, got -4",
            "kernels --experts 4 | --experts must be at least 8",
            "kernels --iterations 0 | --iterations must be at least 1, got 0"})
    void badOptions_exitTwo_withOneLineNamingTheOption_beforeAnyWork(String args, String message) {
        String[] argv = ("bench " + args + " --models-dir " + models).split(" ");
        if (args.startsWith("kernels")) {
            argv = ("bench " + args).split(" ");
        }
        String[] r = run(argv);
        assertThat(r[0]).isEqualTo("2");
        assertThat(r[2].strip()).contains(message).doesNotContain("Exception").hasLineCount(1);
        assertThat(r[1]).isEmpty();
        assertThat(models).isEmptyDirectory();
    }
}
