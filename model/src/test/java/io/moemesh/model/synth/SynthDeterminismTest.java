package io.moemesh.model.synth;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.safetensors.SafetensorsWriter;
import io.moemesh.model.safetensors.DType;
import io.moemesh.model.safetensors.SafetensorsWriter.Tensor;
import io.moemesh.model.safetensors.WrittenSafetensors;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SynthDeterminismTest {

    @TempDir
    Path dir;

    private static final SynthSpec SPEC =
            SynthSpec.of(SynthArch.QWEN2_MOE, 64, 32, 2, 8, 2, 4, 2, 512).withSeed(42);

    @Test
    void write_sameSeed_sameBytes() throws IOException {
        SyntheticCheckpoint.write(SPEC, dir.resolve("a"));
        SyntheticCheckpoint.write(SPEC, dir.resolve("b"));
        for (String file : List.of("model.safetensors", "config.json", "generation_config.json", "tokenizer.json")) {
            assertThat(dir.resolve("a").resolve(file)).as(file).hasSameBinaryContentAs(dir.resolve("b").resolve(file));
        }
    }

    @Test
    void write_otherSeed_sameHeaderOtherValues() throws IOException {
        SyntheticCheckpoint.write(SPEC, dir.resolve("a"));
        SyntheticCheckpoint.write(SPEC.withSeed(43), dir.resolve("b"));
        WrittenSafetensors a = WrittenSafetensors.open(dir.resolve("a/model.safetensors"));
        WrittenSafetensors b = WrittenSafetensors.open(dir.resolve("b/model.safetensors"));
        assertThat(a.headerBytes()).isEqualTo(b.headerBytes());
        for (String name : a.entries().keySet()) {
            assertThat(a.bytes(name)).as(name).isNotEqualTo(b.bytes(name));
        }
    }

    @Test
    void write_distinctTensors_getDistinctValues() throws IOException {
        SyntheticCheckpoint.write(SPEC, dir);
        WrittenSafetensors st = WrittenSafetensors.open(dir.resolve("model.safetensors"));
        assertThat(st.bytes("model.layers.0.mlp.experts.0.up_proj.weight"))
                .isNotEqualTo(st.bytes("model.layers.0.mlp.experts.1.up_proj.weight"))
                .isNotEqualTo(st.bytes("model.layers.1.mlp.experts.0.up_proj.weight"))
                .isNotEqualTo(st.bytes("model.layers.0.mlp.experts.0.gate_proj.weight"));
        assertThat(st.bytes("model.embed_tokens.weight")).isNotEqualTo(st.bytes("lm_head.weight"));
    }

    @Test
    void values_multiChunkTensors_independentOfThreadCount() throws IOException {
        // 2.5 chunks, a tiny tensor, then 1 chunk + 1 element: exercises chunk and tensor boundaries in the pipeline.
        List<Tensor> tensors = List.of(
                Tensor.of("big.weight", DType.F32, 5, SynthValues.CHUNK / 2),
                Tensor.of("tiny.norm.weight", DType.F32, 3),
                Tensor.of("odd.weight", DType.BF16, SynthValues.CHUNK + 1));
        for (int threads : new int[] {1, 3}) {
            try (SynthValues values = new SynthValues(9, tensors, threads)) {
                SafetensorsWriter.write(dir.resolve("t" + threads + ".safetensors"), tensors, values);
            }
        }
        assertThat(dir.resolve("t1.safetensors")).hasSameBinaryContentAs(dir.resolve("t3.safetensors"));

        // every value is a pure function of (seed, name, chunk): recompute chunk 2 of big.weight directly
        float[] chunk = new float[SynthValues.CHUNK];
        SynthValues.fill(9, "big.weight", 2, chunk, SynthValues.CHUNK / 2);
        float[] written = WrittenSafetensors.open(dir.resolve("t1.safetensors")).floats("big.weight");
        for (int i = 0; i < SynthValues.CHUNK / 2; i++) {
            assertThat(written[2 * SynthValues.CHUNK + i]).isEqualTo(chunk[i]);
        }
        assertThat(Files.size(dir.resolve("t1.safetensors")))
                .isEqualTo(8 + WrittenSafetensors.open(dir.resolve("t1.safetensors")).headerLength()
                        + 4L * 5 * SynthValues.CHUNK / 2 + 12 + 2L * (SynthValues.CHUNK + 1));
    }

    @Test
    void values_sharedTensorName_keepsValuesWhenModelGrows() throws IOException {
        SyntheticCheckpoint.write(SPEC, dir.resolve("small"));
        SyntheticCheckpoint.write(SPEC.withSharedIntermediate(48), dir.resolve("grown"));
        WrittenSafetensors a = WrittenSafetensors.open(dir.resolve("small/model.safetensors"));
        WrittenSafetensors b = WrittenSafetensors.open(dir.resolve("grown/model.safetensors"));
        String name = "model.layers.1.mlp.experts.7.down_proj.weight";
        assertThat(a.bytes(name)).isEqualTo(b.bytes(name));
    }
}
