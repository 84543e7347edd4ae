package io.moemesh.model.kv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

class ModelFingerprintTest {
    @TempDir
    Path tmp;

    private Path copy(String model, String as) throws IOException {
        Path to = tmp.resolve(as);
        Files.createDirectories(to);
        try (Stream<Path> files = Files.list(TestModels.dir(model))) {
            for (Path f : files.toList()) {
                Files.copy(f, to.resolve(f.getFileName()));
            }
        }
        return to;
    }

    @ParameterizedTest
    @ValueSource(strings = {TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE})
    void sameDirectoryTwice_andARenamedCopy_giveTheSameFingerprint(String model) throws IOException {
        ModelFingerprint a = ModelFingerprint.of(TestModels.dir(model));
        assertThat(ModelFingerprint.of(TestModels.dir(model))).isEqualTo(a);
        assertThat(ModelFingerprint.of(copy(model, "renamed-" + model))).isEqualTo(a);
    }

    @Test
    void differentModels_differ_evenTheSameWeightsInAnotherDtype() {
        assertThat(ModelFingerprint.of(TestModels.dir(TestModels.MIXTRAL)))
                .isNotEqualTo(ModelFingerprint.of(TestModels.dir(TestModels.MIXTRAL_BF16)))
                .isNotEqualTo(ModelFingerprint.of(TestModels.dir(TestModels.QWEN2_MOE)));
    }

    /**
     * A directory with model.safetensors beside a sharded checkpoint's index: the fingerprint is of the single file,
     * the weights TensorStore reads there (transformers' order), not of the shards the index lists.
     */
    @Test
    void singleFileBesideAnIndex_fingerprintsTheSingleFile_theWeightsServed() throws IOException {
        Path both = copy(TestModels.MIXTRAL, "both");
        try (Stream<Path> files = Files.list(TestModels.dir(TestModels.MIXTRAL_BF16))) {
            for (Path f : files.filter(f -> f.getFileName().toString().startsWith("model")).toList()) {
                Files.copy(f, both.resolve(f.getFileName()));
            }
        }
        assertThat(both.resolve("model.safetensors.index.json")).exists();
        assertThat(ModelFingerprint.of(both)).isEqualTo(ModelFingerprint.of(TestModels.dir(TestModels.MIXTRAL)));
    }

    @Test
    void aChangedConfig_changesIt() throws IOException {
        Path dir = copy(TestModels.MIXTRAL, "m");
        ModelFingerprint before = ModelFingerprint.of(dir);
        Path config = dir.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 1e-06"));
        assertThat(ModelFingerprint.of(dir)).isNotEqualTo(before);
    }

    @Test
    void aChangedSafetensorsHeader_changesIt() throws IOException {
        Path dir = copy(TestModels.MIXTRAL, "m");
        ModelFingerprint before = ModelFingerprint.of(dir);
        Path weights = dir.resolve("model.safetensors");
        byte[] b = Files.readAllBytes(weights);
        int headerLen = (int) ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
        String header = new String(b, 8, headerLen, StandardCharsets.UTF_8);
        // same length, another tensor name: a header edit that leaves every offset valid
        String edited = header.replace("lm_head.weight", "lm_head.weighT");
        assertThat(edited).isNotEqualTo(header);
        System.arraycopy(edited.getBytes(StandardCharsets.UTF_8), 0, b, 8, headerLen);
        Files.write(weights, b);
        assertThat(ModelFingerprint.of(dir)).isNotEqualTo(before);
    }

    @Test
    void fineTunedWeights_underTheSameConfigAndHeaders_changeIt() throws IOException {
        Path dir = copy(TestModels.MIXTRAL, "m");
        ModelFingerprint before = ModelFingerprint.of(dir);
        Path weights = dir.resolve("model.safetensors");
        byte[] b = Files.readAllBytes(weights);
        b[b.length - 1] ^= 1; // the last weight's lowest mantissa byte: inside the last data sample
        Files.write(weights, b);
        assertThat(ModelFingerprint.of(dir)).isNotEqualTo(before);
    }

    /**
     * A fine-tune or a merged LoRA changes every element of the tensors it touches, wherever they lie in the file:
     * scaling one tensor far from the file's start, middle and end must change the fingerprint (it gives other
     * tokens, so sharing KV blocks with the original would serve wrong keys and values).
     */
    @ParameterizedTest
    @ValueSource(strings = {"model.layers.0.self_attn.k_proj.weight", "model.layers.1.block_sparse_moe.experts.2.w1.weight",
            "model.layers.1.post_attention_layernorm.weight"})
    void differs_whenAnyTensorOutsideTheOldSamplesChanges(String tensor) throws IOException {
        Path dir = copy(TestModels.MIXTRAL, "m");
        ModelFingerprint before = ModelFingerprint.of(dir);
        Path weights = dir.resolve("model.safetensors");
        byte[] b = Files.readAllBytes(weights);
        ByteBuffer le = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        int headerLen = (int) le.getLong(0);
        JsonNode entry = JsonMapper.builder().build()
                .readTree(new String(b, 8, headerLen, StandardCharsets.UTF_8)).get(tensor);
        assertThat(entry.get("dtype").stringValue()).isEqualTo("F32");
        int dataStart = 8 + headerLen;
        int begin = dataStart + entry.get("data_offsets").get(0).intValue();
        int end = dataStart + entry.get("data_offsets").get(1).intValue();
        // the old fingerprint's three samples per file: the data's first, middle and last 4 KiB
        int dataLen = b.length - dataStart;
        int sample = ModelFingerprint.SAMPLE_BYTES;
        for (int oldSample : new int[] {dataStart, dataStart + (dataLen - sample) / 2, b.length - sample}) {
            assertThat(end <= oldSample || begin >= oldSample + sample).as("outside the old sample at " + oldSample).isTrue();
        }
        for (int at = begin; at < end; at += 4) {
            le.putFloat(at, le.getFloat(at) * 1.5f);
        }
        Files.write(weights, b);
        assertThat(ModelFingerprint.of(dir)).isNotEqualTo(before);
    }

    @Test
    void missingOrBrokenFiles_areModelFormatErrorsNamingTheFile() throws IOException {
        Path dir = copy(TestModels.MIXTRAL, "m");
        Files.write(dir.resolve("model.safetensors"), new byte[] {1, 2, 3});
        assertThatThrownBy(() -> ModelFingerprint.of(dir)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("model.safetensors").hasMessageContaining("truncated");
        Files.delete(dir.resolve("model.safetensors"));
        assertThatThrownBy(() -> ModelFingerprint.of(dir)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("no model.safetensors");
        Files.delete(dir.resolve("config.json"));
        assertThatThrownBy(() -> ModelFingerprint.of(dir)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("config.json");
    }
}
