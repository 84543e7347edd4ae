package io.moemesh.service.grpc;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.ShortBuffer;
import java.util.Arrays;

/**
 * float32 matrices ⇄ {@code moemesh.common.v1.Tensor}: packed little-endian, row-major. F32 is exact and the
 * default; BF16 (round to nearest even, as torch) halves the bytes as a lossy option. Decoding checks dtype,
 * shape and byte length and says which is wrong, so a malformed message fails alone.
 */
public final class TensorCodec {
    private TensorCodec() {
    }

    /** rows × cols floats of src from {@code off}, as an F32 (or lossy BF16) tensor. */
    public static Tensor encode(float[] src, int off, int rows, int cols, DType dtype) {
        int n = rows * cols;
        ByteBuffer buf;
        if (dtype == DType.DTYPE_BF16) {
            buf = ByteBuffer.allocate(n * 2).order(ByteOrder.LITTLE_ENDIAN);
            ShortBuffer s = buf.asShortBuffer();
            for (int i = 0; i < n; i++) {
                s.put(i, toBf16(src[off + i]));
            }
        } else if (dtype == DType.DTYPE_F32 || dtype == DType.DTYPE_UNSPECIFIED) {
            buf = ByteBuffer.allocate(n * 4).order(ByteOrder.LITTLE_ENDIAN);
            buf.asFloatBuffer().put(src, off, n);
        } else {
            throw new IllegalArgumentException("tensors travel as DTYPE_F32 or DTYPE_BF16, not " + dtype);
        }
        return Tensor.newBuilder().setDtype(dtype == DType.DTYPE_BF16 ? DType.DTYPE_BF16 : DType.DTYPE_F32)
                .addShape(rows).addShape(cols).setData(UnsafeByteOperations.unsafeWrap(buf.array())).build();
    }

    public static Tensor encode(float[] src, int off, int rows, int cols) {
        return encode(src, off, rows, cols, DType.DTYPE_F32);
    }

    /**
     * Decodes a [rows, cols] F32 or BF16 tensor into {@code dst[off..]}.
     *
     * @param what names the field in error messages, e.g. "activations"
     */
    public static void decode(Tensor t, String what, int rows, int cols, float[] dst, int off) {
        long[] shape = t.getShapeList().stream().mapToLong(Long::longValue).toArray();
        if (shape.length != 2 || shape[0] != rows || shape[1] != cols) {
            throw new IllegalArgumentException(what + ": shape " + Arrays.toString(shape) + " does not match ["
                    + rows + ", " + cols + "]");
        }
        if ((long) rows * cols > Integer.MAX_VALUE / 4 || rows < 0 || cols < 0) {
            throw new IllegalArgumentException(what + ": [" + rows + ", " + cols + "] is too large for one message");
        }
        int n = rows * cols;
        ByteString data = t.getData();
        switch (t.getDtype()) {
            case DTYPE_F32 -> {
                checkBytes(what, data, (long) n * 4, t.getDtype());
                data.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(dst, off, n);
            }
            case DTYPE_BF16 -> {
                checkBytes(what, data, (long) n * 2, t.getDtype());
                ShortBuffer s = data.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asShortBuffer();
                for (int i = 0; i < n; i++) {
                    dst[off + i] = Float.intBitsToFloat((s.get(i) & 0xffff) << 16);
                }
            }
            default -> throw new IllegalArgumentException(what + ": dtype " + t.getDtype()
                    + " is not supported (DTYPE_F32, or DTYPE_BF16 as a lossy option)");
        }
    }

    /** Rows of a 2-d tensor, or -1 when it is not 2-d. */
    public static int rows(Tensor t) {
        return t.getShapeCount() == 2 ? (int) Math.min(Integer.MAX_VALUE, t.getShape(0)) : -1;
    }

    private static void checkBytes(String what, ByteString data, long expected, DType dtype) {
        if (data.size() != expected) {
            throw new IllegalArgumentException(what + ": " + data.size() + " bytes of " + dtype + " data, expected "
                    + expected + " (truncated or padded payload)");
        }
    }

    /** float32 → bfloat16, round to nearest even; NaN stays a quiet NaN. */
    public static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) 0x7fc0;
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

}
