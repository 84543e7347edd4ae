package io.moemesh.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
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
        assertThat(run.err().strip()).isEqualTo("moemesh synth: --out " + file + " exists and is not a directory");
    }

    private static final String SMALL = " --hidden 64 --intermediate 32 --layers 1 --experts 8 --top-k 2 --heads 4"
            + " --kv-heads 2 --vocab 512";

    /** Sizes are checked before anything is written: one line naming the option, exit 2, nothing created. */
    @ParameterizedTest(name = "{1}")
    @CsvSource(delimiter = '|', value = {
        "--hidden 2000000000 --intermediate 32 --layers 1 --experts 8 | "
                + "--hidden 2000000000: the checkpoint would be larger than 2^63 bytes; give smaller sizes",
        "--hidden 64 --intermediate 32 --layers 1 --experts 1000000 | "
                + "--experts 1000000 and --layers 1 make 3000010 tensors, more than a safetensors header may list",
    })
    void synth_sizesTooLargeToWrite_exitWith2NamingTheOption_beforeWritingAnything(String sizes, String message) {
        Path out = tmp.resolve("big");
        CliRun run = CliRun.of(("synth --arch mixtral --out " + out + " " + sizes + " --top-k 2 --heads 4 --kv-heads 2"
                + " --vocab 512").split("\\s+"));
        assertThat(run.exitCode()).as(run.err()).isEqualTo(2);
        assertThat(run.err()).startsWith("moemesh synth: ").contains(message).doesNotContain("\tat ");
        assertThat(run.err().strip().lines()).hasSize(1);
        assertThat(out).doesNotExist();
    }

    @Test
    void synth_largerThanTheFreeSpace_namesOutAndBothSizes() {
        Path out = tmp.resolve("big");
        CliRun run = CliRun.of(("synth --arch mixtral --out " + out + " --hidden 65536 --intermediate 1000000 "
                + "--layers 10 --experts 64 --top-k 2 --heads 4 --kv-heads 2 --vocab 512").split("\\s+"));
        assertThat(run.exitCode()).isEqualTo(2);
        assertThat(run.err().strip()).startsWith("moemesh synth: --out " + out + ": the checkpoint needs ")
                .contains("free on its file system").doesNotContain("\n");
        assertThat(out).doesNotExist();
    }

    /** A write that fails part way (here: model.safetensors.partial cannot be created) leaves no half checkpoint. */
    @Test
    void synth_failingPartWay_removesWhatItWrote_exitsWith2InOneLine() throws java.io.IOException {
        Path out = Files.createDirectories(tmp.resolve("out"));
        Files.writeString(out.resolve("notes.txt"), "the caller's");
        Files.createDirectory(out.resolve("model.safetensors.partial")); // a directory: opening it for writing fails
        CliRun run = CliRun.of(("synth --arch mixtral --out " + out + SMALL).split("\\s+"));
        assertThat(run.exitCode()).as(run.err()).isEqualTo(2);
        assertThat(run.err().strip()).startsWith("moemesh synth: --out " + out + ": writing the checkpoint failed (")
                .endsWith("); removed the files written").doesNotContain("\n");
        try (var left = Files.list(out)) {
            assertThat(left).extracting(p -> p.getFileName().toString()).containsExactly("notes.txt");
        }
    }

    /**
     * --out naming another checkpoint's directory (a download, a mistyped path): one line naming the directory and
     * its index, exit 2, every file as it was. Its index and shards used to be deleted, its config.json replaced.
     */
    @Test
    void synth_intoAnotherCheckpointsDirectory_exitsWith2NamingIt_andTouchesNothing() throws java.io.IOException {
        Path out = Files.createDirectories(tmp.resolve("Mixtral-8x7B"));
        Files.writeString(out.resolve("model.safetensors.index.json"),
                "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\"}}");
        Files.writeString(out.resolve("model-00001-of-00002.safetensors"), "shard 1");
        Files.writeString(out.resolve("model-00002-of-00002.safetensors"), "shard 2");
        Files.writeString(out.resolve("config.json"), "{\"model_type\": \"mixtral\"}");
        Map<String, String> before = contents(out);

        CliRun run = CliRun.of(("synth --arch mixtral --out " + out + SMALL).split("\\s+"));

        assertThat(run.exitCode()).as(run.err()).isEqualTo(2);
        assertThat(run.err().strip()).isEqualTo("moemesh synth: --out " + out + " holds model.safetensors.index.json "
                + "and 2 more weight files, which synth does not write: another checkpoint's weights, whose config.json "
                + "and tokenizer.json synth would replace; give a new or empty directory");
        assertThat(contents(out)).isEqualTo(before);
    }

    /**
     * Its own earlier output is written over (reruns, the benches' model cache); a rerun that fails part way (here
     * model.safetensors.partial cannot be created) leaves it as it was, instead of removing its config.json.
     */
    @Test
    void synth_overItsOwnEarlierOutput_writesOverIt_andARerunThatFailsLeavesItWhole() throws java.io.IOException {
        Path out = tmp.resolve("M");
        CliRun first = CliRun.of(("synth --arch mixtral --out " + out + SMALL + " --seed 1").split("\\s+"));
        CliRun second = CliRun.of(("synth --arch mixtral --out " + out + SMALL + " --seed 2").split("\\s+"));
        assertThat(first.exitCode()).as(first.err()).isZero();
        assertThat(second.exitCode()).as(second.err()).isZero();
        assertThat(Files.readString(out.resolve("README.md"))).contains("--seed 2");
        Map<String, String> before = contents(out);

        Files.createDirectory(out.resolve("model.safetensors.partial")); // a directory: opening it for writing fails
        CliRun failing = CliRun.of(("synth --arch mixtral --out " + out + SMALL + " --seed 3").split("\\s+"));

        assertThat(failing.exitCode()).as(failing.err()).isEqualTo(2);
        assertThat(contents(out)).isEqualTo(before);
    }

    /** Every entry of {@code d} by name, with its bytes' hash ("dir" for a directory). */
    private static Map<String, String> contents(Path d) throws java.io.IOException {
        Map<String, String> out = new TreeMap<>();
        try (var files = Files.list(d)) {
            for (Path f : files.toList()) {
                out.put(f.getFileName().toString(),
                        Files.isRegularFile(f) ? Integer.toHexString(Arrays.hashCode(Files.readAllBytes(f))) : "dir");
            }
        }
        return out;
    }

    /** The size checked up front is the size written: SynthSize follows the layout of every architecture. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"mixtral", "qwen2_moe", "olmoe"})
    void synthSize_matchesTheTensorsTheCheckpointHolds(String arch) {
        var spec = new io.moemesh.model.synth.SynthSpec(io.moemesh.model.synth.SynthArch.parse(arch), 48, 40, 3, 5, 2,
                6, 2, 600, java.util.OptionalInt.of(arch.equals("olmoe") ? 8 : 10),
                arch.equals("qwen2_moe") ? java.util.OptionalInt.of(24) : java.util.OptionalInt.empty(),
                io.moemesh.model.synth.SynthDtype.BF16, 64, 0);
        var tensors = io.moemesh.model.synth.SyntheticCheckpoint.tensors(spec);
        SynthSize size = SynthSize.of(spec);
        assertThat(size.tensors()).isEqualTo(tensors.size());
        assertThat(size.dataBytes()).isEqualTo(tensors.stream()
                .mapToLong(io.moemesh.model.safetensors.SafetensorsWriter.Tensor::byteSize).sum());
    }
}
