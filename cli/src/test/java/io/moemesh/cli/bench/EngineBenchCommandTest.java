package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.Main;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class EngineBenchCommandTest {
    @TempDir
    Path models;

    private static String[] run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cmd = Main.commandLine();
        cmd.setOut(new PrintWriter(out, true));
        cmd.setErr(new PrintWriter(err, true));
        int code = cmd.execute(args);
        return new String[] {Integer.toString(code), out.toString(), err.toString()};
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
}
