package io.moemesh.model.safetensors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.moemesh.model.ModelFormatException;
import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SafetensorsFileTest {
    @TempDir
    Path tmp;

    /** Header JSON then {@code dataBytes} zero bytes, in the safetensors layout. */
    private Path file(String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path p = tmp.resolve("model.safetensors");
        Files.write(p, b.array());
        return p;
    }

    @Test
    void open_readsDtypeShapeAndLittleEndianData() throws IOException {
        byte[] h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}".getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + 8).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).putFloat(1.5f).putFloat(-2f);
        Path p = tmp.resolve("x.safetensors");
        Files.write(p, b.array());
        try (Arena arena = Arena.ofConfined()) {
            TensorView t = SafetensorsFile.open(p, arena).tensor("a").orElseThrow();
            assertThat(t.dtype()).isEqualTo(DType.F32);
            assertThat(t.shape()).containsExactly(2);
            assertThat(io.moemesh.model.kernel.Matrix.of1d(t).get(0, 1)).isEqualTo(-2f);
        }
    }

    @ParameterizedTest(name = "{2}")
    @CsvSource(delimiter = '|', value = {
        "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}  | 8  | dtype I64 is not supported",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}} | 8  | fall outside",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}  | 8  | do not hold shape",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}                         | 8  | data_offsets",
        "{\"a\": [1, 2                                                      | 0  | not valid JSON",
        "[1, 2]                                                             | 0  | not a JSON object",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}} | 8 "
                + "| tensor a: shape [4294967296,4294967296] of F32 has more than 2^63 - 1 bytes",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387906],\"data_offsets\":[0,8]}} | 8 "
                + "| tensor a: shape [4611686018427387906] of F32 has more than 2^63 - 1 bytes",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}} | 8 "
                + "| tensor a: shape [99999999999999999999] is not a list of sizes",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}} | 8 "
                + "| tensor a: shape [2,-1] is not a list of sizes",
    })
    void open_corruptHeader_failsNamingFileAndProblem(String header, int data, String message) throws IOException {
        Path p = file(header, data);
        try (Arena arena = Arena.ofConfined()) {
            assertThatThrownBy(() -> SafetensorsFile.open(p, arena)).isInstanceOf(ModelFormatException.class)
                    .hasMessageContaining(p.toString()).hasMessageContaining(message);
        }
    }

    /**
     * The format's data section is tiled exactly by the tensors (no overlap, no hole, nothing after the last), and each
     * name is listed once: the old code gave two tensors the same bytes, read past holes, and kept the last of two
     * entries of one name. Offsets must be integers: a string was read as -1 and reported as a truncated file.
     */
    @ParameterizedTest(name = "{2}")
    @CsvSource(delimiter = '|', value = {
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} | 8 "
                + "| tensors a [0, 8) and b [0, 8) overlap",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}} | 16 "
                + "| tensors a [0, 12) and b [8, 16) overlap",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}} | 12 "
                + "| the safetensors header lists a twice",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}} | 12 "
                + "| data bytes [0, 4) before tensor a belong to no tensor",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}} | 12 "
                + "| data bytes [4, 8) before tensor b belong to no tensor",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} | 100 "
                + "| the last 92 data bytes, after tensor a, belong to no tensor",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]}} | 8 "
                + "| tensor a: data_offsets [\"0\",\"8\"] are not two byte offsets [begin, end]",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.0,8.0]}} | 8 "
                + "| tensor a: data_offsets [0.0,8.0] are not two byte offsets",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[null,8]}} | 8 "
                + "| tensor a: data_offsets [null,8] are not two byte offsets",
        "{\"a\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}} | 8 | tensor a: dtype 5 is not supported",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}{} | 8 | not valid JSON",
    })
    void open_rangesThatDoNotTileTheDataOrNamesListedTwice_refusedNamingTheTensors(String header, int data,
            String message) throws IOException {
        Path p = file(header, data);
        try (Arena arena = Arena.ofConfined()) {
            assertThatThrownBy(() -> SafetensorsFile.open(p, arena)).isInstanceOf(ModelFormatException.class)
                    .hasMessageStartingWith(p.toString()).hasMessageContaining(message);
        }
    }

    /** Empty tensors take no bytes: one at the start, between two others, or at the end still tiles the data. */
    @Test
    void open_emptyTensorsBetweenOthers_tileTheData() throws IOException {
        Path p = file("{\"e0\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"e1\":{\"dtype\":\"BF16\",\"shape\":[2,0],\"data_offsets\":[4,4]},"
                + "\"e2\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}", 8);
        try (Arena arena = Arena.ofConfined()) {
            assertThat(SafetensorsFile.open(p, arena).names()).containsExactly("e0", "b", "a", "e1", "e2");
        }
    }

    /** Every weight file of every bundled model tiles its data section (what the check above demands). */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {TestModels.MIXTRAL, TestModels.MIXTRAL_BF16,
            TestModels.QWEN2_MOE})
    void open_everyBundledWeightFile_opens(String model) throws IOException {
        try (var files = Files.list(TestModels.dir(model)); Arena arena = Arena.ofConfined()) {
            List<Path> weights = files.filter(f -> f.toString().endsWith(".safetensors")).toList();
            assertThat(weights).isNotEmpty();
            for (Path f : weights) {
                assertThat(SafetensorsFile.open(f, arena).names()).as(f.toString()).isNotEmpty();
            }
        }
    }

    /**
     * A failed open must not leave the file mapped in the caller's long-lived arena (TensorStore's shared one):
     * the old code mapped the whole file before reading its header, and every retry added another mapping.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "{\"a\": [1, 2                                                      | 64",
        "[1, 2]                                                             | 64",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}} | 8",
        "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}  | 8",
    })
    void open_corruptHeader_keepsNoMapping_acrossRetries(String header, int data) throws IOException {
        assumeTrue(Files.isReadable(Path.of("/proc/self/maps")), "needs Linux's /proc/self/maps");
        Path p = file(header, data).toRealPath();
        try (Arena shared = Arena.ofShared()) {
            for (int attempt = 0; attempt < 5; attempt++) {
                assertThatThrownBy(() -> SafetensorsFile.open(p, shared)).isInstanceOf(ModelFormatException.class);
            }
            assertThat(Files.readAllLines(Path.of("/proc/self/maps"))).noneMatch(line -> line.endsWith(p.toString()));
        }
    }

    /** A zero dimension makes a tensor empty, however large the others: its size is no overflow. */
    @Test
    void open_emptyTensorWithHugeOtherDimensions_holdsNoBytes() throws IOException {
        Path p = file("{\"a\":{\"dtype\":\"BF16\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 0);
        try (Arena arena = Arena.ofConfined()) {
            assertThat(SafetensorsFile.open(p, arena).tensor("a").orElseThrow().shape())
                    .containsExactly(4294967296L, 4294967296L, 0L);
        }
    }

    @Test
    void open_validFile_isMappedUntilTheArenaCloses() throws IOException {
        assumeTrue(Files.isReadable(Path.of("/proc/self/maps")), "needs Linux's /proc/self/maps");
        Path p = file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8).toRealPath();
        try (Arena shared = Arena.ofShared()) {
            SafetensorsFile.open(p, shared);
            assertThat(Files.readAllLines(Path.of("/proc/self/maps"))).anyMatch(line -> line.endsWith(p.toString()));
        }
    }

    @Test
    void open_truncatedFile_saysTruncated() throws IOException {
        Path shortFile = tmp.resolve("short.safetensors");
        Files.write(shortFile, new byte[] {1, 2, 3});
        Path cut = tmp.resolve("cut.safetensors");
        byte[] full = Files.readAllBytes(TestModels.dir(TestModels.MIXTRAL).resolve("model.safetensors"));
        Files.write(cut, java.util.Arrays.copyOf(full, 100));
        try (Arena arena = Arena.ofConfined()) {
            assertThatThrownBy(() -> SafetensorsFile.open(shortFile, arena)).hasMessageContaining("truncated");
            assertThatThrownBy(() -> SafetensorsFile.open(cut, arena)).hasMessageContaining("truncated");
            assertThatThrownBy(() -> SafetensorsFile.open(tmp.resolve("none.safetensors"), arena))
                    .hasMessageContaining("file not found");
        }
    }

    @Test
    void store_sharded_mapsOnlyTheShardsAskedFor() {
        try (TensorStore store = TensorStore.open(TestModels.dir(TestModels.MIXTRAL_BF16))) {
            assertThat(store.openedShards()).isZero();
            TensorView t = store.tensor("model.embed_tokens.weight", 512, 64);
            assertThat(t.dtype()).isEqualTo(DType.BF16);
            assertThat(store.openedShards()).isEqualTo(1);
        }
    }

    @Test
    void store_missingTensorOrWrongShape_namesTensorAndShapes() {
        try (TensorStore store = TensorStore.open(TestModels.dir(TestModels.MIXTRAL))) {
            assertThatThrownBy(() -> store.tensor("model.layers.9.mlp.gate.weight"))
                    .isInstanceOf(ModelFormatException.class).hasMessageContaining("model.layers.9.mlp.gate.weight")
                    .hasMessageContaining("missing");
            assertThatThrownBy(() -> store.tensor("model.embed_tokens.weight", 64, 512))
                    .isInstanceOf(ModelFormatException.class).hasMessageContaining("[512, 64]")
                    .hasMessageContaining("expected [64, 512]");
        }
    }

    /**
     * With model.safetensors and a sharded checkpoint's index both in the directory, the single file is read, as
     * transformers loads it; the index used to win, and the engine served other weights than transformers would.
     */
    @Test
    void store_singleFileBesideAnIndex_readsTheSingleFile() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("both"));
        try (var shards = Files.list(TestModels.dir(TestModels.MIXTRAL_BF16))) {
            for (Path f : shards.filter(f -> f.getFileName().toString().startsWith("model")).toList()) {
                Files.copy(f, dir.resolve(f.getFileName()));
            }
        }
        Files.copy(TestModels.dir(TestModels.MIXTRAL).resolve("model.safetensors"), dir.resolve("model.safetensors"));
        try (TensorStore store = TensorStore.open(dir)) {
            TensorView t = store.tensor("model.embed_tokens.weight", 512, 64);
            assertThat(t.file()).isEqualTo("model.safetensors");
            assertThat(t.dtype()).isEqualTo(DType.F32);
            assertThatThrownBy(() -> store.tensor("no.such.tensor")).hasMessageContaining("model.safetensors: tensor "
                    + "no.such.tensor is missing");
        }
    }

    @Test
    void store_noWeights_saysWhichFilesItLookedFor() {
        assertThatThrownBy(() -> TensorStore.open(tmp)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("model.safetensors.index.json");
    }
}
