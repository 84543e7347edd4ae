package io.moemesh.model.safetensors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.safetensors.SafetensorsWriter.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SafetensorsWriterTest {

    private static final ValueLayout.OfShort LE_SHORT =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;

    @Test
    void write_layout_lengthPrefixPaddedJsonHeaderAndContiguousOffsets() throws IOException {
        Path file = dir.resolve("m.safetensors");
        List<Tensor> tensors = List.of(
                Tensor.of("a", DType.F32, 2, 3),
                Tensor.of("b.weight", DType.BF16, 5),
                Tensor.of("c", DType.F16, 1, 1, 3));
        SafetensorsWriter.write(file, tensors, (t, sink) -> sink.putFloats(new float[(int) t.elements()]));

        byte[] raw = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(raw, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertThat(n % 8).isZero();
        String header = new String(raw, 8, (int) n, StandardCharsets.UTF_8);
        assertThat(header).startsWith("{");
        assertThat(header.stripTrailing()).endsWith("}");
        assertThat(header.substring(header.stripTrailing().length())).matches(" {0,7}");
        assertThat(raw).hasSize((int) (8 + n + 24 + 10 + 6));

        WrittenSafetensors st = WrittenSafetensors.open(file);
        assertThat(st.header().get("__metadata__").get("format").asString()).isEqualTo("pt");
        assertThat(st.entries()).containsOnlyKeys("a", "b.weight", "c");
        assertThat(st.entries().get("a")).isEqualTo(new WrittenSafetensors.Entry("F32", List.of(2L, 3L), 0, 24));
        assertThat(st.entries().get("b.weight")).isEqualTo(new WrittenSafetensors.Entry("BF16", List.of(5L), 24, 34));
        assertThat(st.entries().get("c")).isEqualTo(new WrittenSafetensors.Entry("F16", List.of(1L, 1L, 3L), 34, 40));
    }

    @Test
    void write_f32_storesExactLittleEndianBits() throws IOException {
        float[] values = {1f, -0f, Float.MIN_VALUE, Float.MAX_VALUE, Float.NEGATIVE_INFINITY,
                Float.intBitsToFloat(0x7FA00001), 0.1f, -123.456f};
        Path file = dir.resolve("f32.safetensors");
        SafetensorsWriter.write(file, List.of(Tensor.of("x", DType.F32, values.length)), (t, s) -> s.putFloats(values));

        ByteBuffer b = WrittenSafetensors.open(file).bytes("x");
        for (float v : values) {
            assertThat(b.getInt()).isEqualTo(Float.floatToRawIntBits(v));
        }
    }

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
            // exactly halfway: ties go to the even neighbour
            "3F808000, 3F80", "3F818000, 3F82", "BF808000, BF80", "BF818000, BF82",
            "00008000, 0000", "00018000, 0002", "7F7F8000, 7F80",
            // just below / above halfway
            "3F807FFF, 3F80", "3F808001, 3F81", "BF808001, BF81",
            // exact, zeros, subnormal
            "3F800000, 3F80", "00000000, 0000", "80000000, 8000", "00010000, 0001",
            // overflow to infinity, largest finite that stays finite
            "7F7FFFFF, 7F80", "FF7FFFFF, FF80", "7F7F7FFF, 7F7F",
            // infinities
            "7F800000, 7F80", "FF800000, FF80",
            // every NaN (quiet, signalling, negative, payload in the low half) becomes 0x7FC0
            "7FC00000, 7FC0", "7F800001, 7FC0", "FFC00001, 7FC0", "7FFFFFFF, 7FC0", "FF810000, 7FC0"})
    void write_bf16_roundsHalfToEven_andMapsNanInfinity(String f32Hex, String bf16Hex) throws IOException {
        float value = Float.intBitsToFloat(Integer.parseUnsignedInt(f32Hex, 16));
        short expected = (short) Integer.parseInt(bf16Hex, 16);
        assertThat(SafetensorsWriter.toBfloat16(value)).isEqualTo(expected);

        Path file = dir.resolve("bf16.safetensors");
        SafetensorsWriter.write(file, List.of(Tensor.of("x", DType.BF16, 1)), (t, s) -> s.putFloats(new float[] {value}));
        assertThat(WrittenSafetensors.open(file).bytes("x").getShort()).isEqualTo(expected);
    }

    @Test
    void write_f16_usesFloatToFloat16() throws IOException {
        float[] values = {1f / 3, 65504f, 65520f, -2.5e-8f, Float.NaN, Float.POSITIVE_INFINITY, -0f};
        Path file = dir.resolve("f16.safetensors");
        SafetensorsWriter.write(file, List.of(Tensor.of("x", DType.F16, values.length)), (t, s) -> s.putFloats(values));

        ByteBuffer b = WrittenSafetensors.open(file).bytes("x");
        for (float v : values) {
            assertThat(b.getShort()).isEqualTo(Float.floatToFloat16(v));
        }
    }

    @Test
    void write_largeTensorsInOddPieces_crossBufferBoundariesIntact() throws IOException {
        int n = 3_000_001; // 12 MB as F32: more than the writer's 8 MB buffer
        List<Tensor> tensors = List.of(Tensor.of("f", DType.F32, n), Tensor.of("h", DType.BF16, n),
                Tensor.of("raw", DType.F32, 3));
        Path file = dir.resolve("big.safetensors");
        SafetensorsWriter.write(file, tensors, (t, sink) -> {
            if (t.name().equals("raw")) {
                ByteBuffer bytes = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
                bytes.putFloat(7f).putFloat(8f).putFloat(9f).flip();
                sink.putBytes(bytes);
                return;
            }
            float[] piece = new float[999_983];
            for (int done = 0; done < n; ) {
                int len = Math.min(piece.length, n - done);
                for (int i = 0; i < len; i++) {
                    piece[i] = done + i;
                }
                sink.putFloats(piece, 0, len);
                done += len;
            }
        });

        WrittenSafetensors st = WrittenSafetensors.open(file);
        float[] f = st.floats("f");
        float[] h = st.floats("h");
        for (int i = 0; i < n; i++) {
            assertThat(f[i]).isEqualTo((float) i);
            assertThat(h[i]).isEqualTo(Float.intBitsToFloat(SafetensorsWriter.toBfloat16(i) << 16));
        }
        assertThat(st.floats("raw")).containsExactly(7f, 8f, 9f);
        assertThat(Files.size(file)).isEqualTo(8 + st.headerLength() + 4L * n + 2L * n + 12);
    }

    @Test
    void write_readBackBySafetensorsFile_sameDtypesShapesAndValues() throws IOException {
        float[] values = {0.5f, -1.25f, 3f, 1f / 3, -0f, 65504f};
        List<Tensor> tensors = List.of(Tensor.of("f", DType.F32, 2, 3), Tensor.of("b", DType.BF16, 6),
                Tensor.of("h", DType.F16, 3, 2));
        Path file = dir.resolve("rt.safetensors");
        SafetensorsWriter.write(file, tensors, (t, s) -> s.putFloats(values));

        try (Arena arena = Arena.ofConfined()) {
            SafetensorsFile st = SafetensorsFile.open(file, arena);
            assertThat(st.names()).containsExactly("f", "b", "h");
            for (Tensor t : tensors) {
                TensorView v = st.tensor(t.name()).orElseThrow();
                assertThat(v.dtype()).isEqualTo(t.dtype());
                assertThat(v.shape()).containsExactly(t.shape().stream().mapToLong(Long::longValue).toArray());
                for (int i = 0; i < values.length; i++) {
                    float expected = switch (t.dtype()) {
                        case F32 -> values[i];
                        case BF16 -> Float.intBitsToFloat(SafetensorsWriter.toBfloat16(values[i]) << 16);
                        case F16 -> Float.float16ToFloat(Float.floatToFloat16(values[i]));
                    };
                    float read = switch (t.dtype()) {
                        case F32 -> v.data().getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i);
                        case BF16 -> Float.intBitsToFloat(v.data().getAtIndex(LE_SHORT, i) << 16);
                        case F16 -> Float.float16ToFloat(v.data().getAtIndex(LE_SHORT, i));
                    };
                    assertThat(read).as("%s[%d]", t.name(), i).isEqualTo(expected);
                }
            }
        }
    }

    @Test
    void write_scalarAndEmptyTensors_getOneAndZeroElements() throws IOException {
        Path file = dir.resolve("edge.safetensors");
        List<Tensor> tensors = List.of(Tensor.of("scalar", DType.F32), Tensor.of("empty", DType.F32, 0, 4),
                Tensor.of("after", DType.F32, 1));
        SafetensorsWriter.write(file, tensors, (t, s) -> s.putFloats(new float[(int) t.elements()]));

        WrittenSafetensors st = WrittenSafetensors.open(file);
        assertThat(st.entries().get("scalar")).isEqualTo(new WrittenSafetensors.Entry("F32", List.of(), 0, 4));
        assertThat(st.entries().get("empty")).isEqualTo(new WrittenSafetensors.Entry("F32", List.of(0L, 4L), 4, 4));
        assertThat(st.entries().get("after").begin()).isEqualTo(4);
    }

    @Test
    void write_metadata_mergedOverFormatPt() throws IOException {
        Path file = dir.resolve("meta.safetensors");
        SafetensorsWriter.write(file, List.of(Tensor.of("x", DType.F32, 1)), Map.of("source", "synthetic"),
                (t, s) -> s.putFloats(new float[1]));
        var meta = WrittenSafetensors.open(file).header().get("__metadata__");
        assertThat(meta.get("format").asString()).isEqualTo("pt");
        assertThat(meta.get("source").asString()).isEqualTo("synthetic");
    }

    @Test
    void write_tooFewElements_failsAndLeavesNoFile() {
        Path file = dir.resolve("short.safetensors");
        assertThatThrownBy(() -> SafetensorsWriter.write(file, List.of(Tensor.of("x", DType.F32, 4)),
                (t, s) -> s.putFloats(new float[3])))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("tensor x: 1 of 4 elements were not supplied");
        assertThat(dir).isEmptyDirectory();
    }

    @Test
    void write_tooManyElements_fails() {
        Path file = dir.resolve("long.safetensors");
        assertThatThrownBy(() -> SafetensorsWriter.write(file, List.of(Tensor.of("x", DType.BF16, 2)),
                (t, s) -> s.putFloats(new float[3])))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("tensor x");
        assertThat(dir).isEmptyDirectory();
    }

    @Test
    void write_rawBytesNotWholeElements_rejected() {
        Path file = dir.resolve("raw.safetensors");
        assertThatThrownBy(() -> SafetensorsWriter.write(file, List.of(Tensor.of("x", DType.F32, 2)),
                (t, s) -> s.putBytes(ByteBuffer.allocate(6))))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("not a whole number of F32 elements");
    }

    @Test
    void write_failure_keepsAnExistingFileUntouched() throws IOException {
        Path file = dir.resolve("keep.safetensors");
        Files.writeString(file, "old");
        assertThatThrownBy(() -> SafetensorsWriter.write(file, List.of(Tensor.of("x", DType.F32, 1)),
                (t, s) -> {
                    throw new IOException("boom");
                })).hasMessage("boom");
        assertThat(Files.readString(file)).isEqualTo("old");
        assertThat(dir.resolve("keep.safetensors.partial")).doesNotExist();
    }

    @Test
    void header_duplicateTensorName_rejected() {
        assertThatThrownBy(() -> SafetensorsWriter.header(
                List.of(Tensor.of("x", DType.F32, 1), Tensor.of("x", DType.F32, 2)), Map.of()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("tensor x declared twice");
    }

    @Test
    void tensor_negativeDimensionOrReservedName_rejected() {
        assertThatThrownBy(() -> Tensor.of("x", DType.F32, 2, -1)).hasMessageContaining("negative dimension");
        assertThatThrownBy(() -> Tensor.of("__metadata__", DType.F32, 1)).hasMessageContaining("invalid tensor name");
        assertThatThrownBy(() -> Tensor.of("huge", DType.F32, Long.MAX_VALUE / 2, 3))
                .isInstanceOf(ArithmeticException.class);
    }
}
