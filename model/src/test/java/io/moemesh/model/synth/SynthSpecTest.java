package io.moemesh.model.synth;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.ModelFormatException;
import java.nio.file.Path;
import java.util.OptionalInt;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class SynthSpecTest {

    private static final SynthArch M = SynthArch.MIXTRAL;

    private static SynthSpec ok() {
        return SynthSpec.of(M, 64, 32, 2, 4, 2, 4, 2, 512);
    }

    static Stream<Arguments> badSpecs() {
        return Stream.of(
                bad("hidden must be positive", () -> SynthSpec.of(M, 0, 32, 2, 4, 2, 4, 2, 512),
                        "--hidden must be positive, got 0"),
                bad("intermediate must be positive", () -> SynthSpec.of(M, 64, -1, 2, 4, 2, 4, 2, 512),
                        "--intermediate must be positive, got -1"),
                bad("layers must be positive", () -> SynthSpec.of(M, 64, 32, 0, 4, 2, 4, 2, 512),
                        "--layers must be positive, got 0"),
                bad("experts must be positive", () -> SynthSpec.of(M, 64, 32, 2, 0, 2, 4, 2, 512),
                        "--experts must be positive, got 0"),
                bad("top-k must be positive", () -> SynthSpec.of(M, 64, 32, 2, 4, 0, 4, 2, 512),
                        "--top-k must be positive, got 0"),
                bad("heads must be positive", () -> SynthSpec.of(M, 64, 32, 2, 4, 2, 0, 2, 512),
                        "--heads must be positive, got 0"),
                bad("kv-heads must be positive", () -> SynthSpec.of(M, 64, 32, 2, 4, 2, 4, 0, 512),
                        "--kv-heads must be positive, got 0"),
                bad("vocab must be positive", () -> SynthSpec.of(M, 64, 32, 2, 4, 2, 4, 2, 0),
                        "--vocab must be positive, got 0"),
                bad("max-position must be positive", () -> ok().withMaxPosition(0),
                        "--max-position must be positive, got 0"),
                bad("head-dim must be positive", () -> ok().withHeadDim(-8), "--head-dim must be positive, got -8"),
                bad("shared-intermediate must be positive",
                        () -> SynthSpec.of(SynthArch.QWEN2_MOE, 64, 32, 2, 4, 2, 4, 2, 512).withSharedIntermediate(0),
                        "--shared-intermediate must be positive, got 0"),
                bad("top-k must not exceed experts", () -> SynthSpec.of(M, 64, 32, 2, 4, 5, 4, 2, 512),
                        "--top-k 5 exceeds --experts 4"),
                bad("heads must be a multiple of kv-heads", () -> SynthSpec.of(M, 96, 32, 2, 4, 2, 6, 4, 512),
                        "--heads 6 is not a multiple of --kv-heads 4"),
                bad("kv-heads must not exceed heads", () -> SynthSpec.of(M, 64, 32, 2, 4, 2, 4, 8, 512),
                        "--heads 4 is not a multiple of --kv-heads 8"),
                bad("hidden divisible by heads without head-dim", () -> SynthSpec.of(M, 100, 32, 2, 4, 2, 16, 4, 512),
                        "--hidden 100 is not divisible by --heads 16"),
                bad("explicit head-dim must be even", () -> ok().withHeadDim(7), "--head-dim 7 must be even"),
                bad("implicit head dim must be even", () -> SynthSpec.of(M, 36, 32, 2, 4, 2, 4, 2, 512),
                        "--hidden / --heads = 9 must be even"),
                bad("olmoe head-dim must equal hidden / heads",
                        () -> SynthSpec.of(SynthArch.OLMOE, 64, 32, 2, 4, 2, 4, 2, 512).withHeadDim(8),
                        "--head-dim 8 must equal --hidden / --heads (64 / 4) for --arch olmoe"),
                bad("shared-intermediate only for qwen2-moe", () -> ok().withSharedIntermediate(16),
                        "--shared-intermediate applies only to --arch qwen2-moe, not mixtral"),
                bad("arch is required", () -> new SynthSpec(null, 64, 32, 2, 4, 2, 4, 2, 512, OptionalInt.empty(),
                        OptionalInt.empty(), SynthDtype.F32, 4096, 0), "--arch is required"),
                bad("dtype is required", () -> new SynthSpec(M, 64, 32, 2, 4, 2, 4, 2, 512, OptionalInt.empty(),
                        OptionalInt.empty(), null, 4096, 0), "--dtype is required"),
                bad("dtype must be f32 or bf16", () -> ok().withDtype(SynthDtype.parse("f16")),
                        "--dtype f16 is not supported: use f32 or bf16"),
                bad("arch must be known", () -> SynthSpec.of(SynthArch.parse("llama"), 64, 32, 2, 4, 2, 4, 2, 512),
                        "--arch llama is not supported: use one of mixtral, qwen2-moe, olmoe"));
    }

    private static Arguments bad(String rule, Supplier<SynthSpec> spec, String message) {
        return Arguments.of(rule, spec, message);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badSpecs")
    void spec_violation_rejectedNamingTheFlag(String rule, Supplier<SynthSpec> spec, String message) {
        assertThatThrownBy(spec::get).isInstanceOf(ModelFormatException.class).hasMessageContaining(message);
    }

    @Test
    void write_vocabBelowTokenizer_rejectedBeforeWritingAnything(@TempDir Path dir) {
        Path out = dir.resolve("out");
        assertThatThrownBy(() -> SyntheticCheckpoint.write(SynthSpec.of(M, 64, 32, 2, 4, 2, 4, 2, 256), out))
                .isInstanceOf(ModelFormatException.class)
                .hasMessage("--vocab 256 is smaller than the bundled tokenizer's 512 ids: use --vocab 512 or more");
        assertThat(out).doesNotExist();
    }

    @Test
    void spec_defaults_headDimHiddenOverHeadsSharedIsIntermediateF32Position4096Seed0() {
        SynthSpec s = SynthSpec.of(SynthArch.QWEN2_MOE, 64, 32, 2, 4, 4, 8, 8, 512);
        assertThat(s.effectiveHeadDim()).isEqualTo(8);
        assertThat(s.headDim()).isEmpty();
        assertThat(s.sharedExpertIntermediate()).isEqualTo(32);
        assertThat(s.dtype()).isEqualTo(SynthDtype.F32);
        assertThat(s.maxPosition()).isEqualTo(4096);
        assertThat(s.seed()).isZero();
        assertThat(new SynthSpec(M, 64, 32, 2, 4, 2, 4, 2, 512, null, null, SynthDtype.BF16, 128, 1).headDim())
                .isEmpty();
    }

    @Test
    void parse_acceptsCliAndTransformersNames() {
        assertThat(SynthArch.parse("qwen2-moe")).isEqualTo(SynthArch.QWEN2_MOE);
        assertThat(SynthArch.parse("Qwen2_MoE")).isEqualTo(SynthArch.QWEN2_MOE);
        assertThat(SynthArch.parse("olmoe")).isEqualTo(SynthArch.OLMOE);
        assertThat(SynthDtype.parse("BF16")).isEqualTo(SynthDtype.BF16);
        assertThat(SynthDtype.parse("float32")).isEqualTo(SynthDtype.F32);
    }

    @Test
    void toCliArgs_listsEveryFlagAndOptionalsOnlyWhenSet() {
        assertThat(String.join(" ", ok().toCliArgs())).isEqualTo("--arch mixtral --hidden 64 --intermediate 32"
                + " --layers 2 --experts 4 --top-k 2 --heads 4 --kv-heads 2 --vocab 512 --dtype f32"
                + " --max-position 4096 --seed 0");
        assertThat(ok().withHeadDim(32).withDtype(SynthDtype.BF16).withSeed(-3).toCliArgs())
                .containsSubsequence("--head-dim", "32", "--dtype", "bf16", "--max-position", "4096", "--seed", "-3");
    }
}
