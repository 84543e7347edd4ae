package io.moemesh.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SynthCommandTest {
    @TempDir
    Path tmp;

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"mixtral, f32", "qwen2_moe, bf16", "olmoe, bf16"})
    void synth_writesALoadableModel_thatGenerates(String arch, String dtype) {
        Path out = tmp.resolve(arch);
        CliRun synth = CliRun.of("synth", "--arch", arch, "--out", out.toString(), "--hidden", "64", "--intermediate",
                "32", "--layers", "2", "--experts", "16", "--top-k", "4", "--heads", "8", "--kv-heads", "2", "--vocab",
                "512", "--head-dim", "8", "--dtype", dtype, "--max-position", "128");
        assertThat(synth.exitCode()).as(synth.err()).isZero();
        assertThat(Files.exists(out.resolve("model.safetensors"))).isTrue();
        CliRun gen = CliRun.of("generate", "--model", out.toString(), "--prompt", "hello", "--max-tokens", "4", "--json");
        assertThat(gen.exitCode()).as(gen.err()).isZero();
        assertThat(gen.lastLine()).contains("\"generated_ids\"");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "--top-k 9 --experts 8 | --top-k 9 exceeds --experts 8",
        "--top-k 2 --experts 8 --dtype f64 | f64",
    })
    void synth_badSpec_exitsWith2NamingTheFlag(String extra, String message) {
        String base = "synth --arch mixtral --out " + tmp.resolve("x") + " --hidden 64 --intermediate 32 --layers 1 "
                + "--heads 4 --kv-heads 2 --vocab 512 ";
        CliRun run = CliRun.of((base + extra).split("\\s+"));
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err()).contains(message);
    }

    @Test
    void synth_toAnOutThatIsAFile_exitsWith2NamingThePath_noStackTrace() throws java.io.IOException {
        java.nio.file.Path file = java.nio.file.Files.createFile(tmp.resolve("a-file"));
        CliRun run = CliRun.of(("synth --arch mixtral --out " + file + " --hidden 64 --intermediate 32 --layers 1 "
                + "--experts 8 --top-k 2 --heads 4 --kv-heads 2 --vocab 512").split("\\s+"));
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err()).contains(file.toString()).doesNotContain("\tat ");
    }
}
