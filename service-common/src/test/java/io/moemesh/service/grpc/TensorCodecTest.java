package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import com.google.protobuf.ByteString;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TensorCodecTest {
    private static final float[] VALUES = {1.5f, -2.25f, 3e-8f, 1e30f, 0f, -0f};

    @Test
    void f32_roundTripIsExact_andLittleEndian() {
        Tensor t = TensorCodec.encode(VALUES, 0, 2, 3);
        assertThat(t.getShapeList()).containsExactly(2L, 3L);
        assertThat(t.getData().byteAt(3)).isEqualTo((byte) 0x3f);
        float[] back = new float[6];
        TensorCodec.decode(t, "x", 2, 3, back, 0);
        assertThat(back).containsExactly(VALUES);
    }

    @Test
    void bf16_isLossyWithinOneBf16Ulp() {
        Tensor t = TensorCodec.encode(VALUES, 0, 3, 2, DType.DTYPE_BF16);
        assertThat(t.getData().size()).isEqualTo(12);
        float[] back = new float[6];
        TensorCodec.decode(t, "x", 3, 2, back, 0);
        for (int i = 0; i < 6; i++) {
            assertThat(back[i]).isCloseTo(VALUES[i], within(Math.abs(VALUES[i]) / 128));
        }
    }

    @ParameterizedTest(name = "{3}")
    @CsvSource(delimiter = '|', value = {
        "DTYPE_F32 | 2 | 23 | truncated",
        "DTYPE_F32 | 3 | 24 | shape [3, 3]",
        "DTYPE_I32 | 2 | 24 | dtype DTYPE_I32",
        "DTYPE_UNSPECIFIED | 2 | 24 | dtype DTYPE_UNSPECIFIED",
    })
    void decode_malformed_saysWhatIsWrong(DType dtype, int rows, int bytes, String message) {
        Tensor t = Tensor.newBuilder().setDtype(dtype).addShape(rows).addShape(3)
                .setData(ByteString.copyFrom(new byte[bytes])).build();
        assertThatThrownBy(() -> TensorCodec.decode(t, "activations", 2, 3, new float[6], 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("activations")
                .hasMessageContaining(message);
    }
}
