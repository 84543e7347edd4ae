package io.moemesh.service.grpc;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * float32 matrices ⇄ {@code moemesh.common.v1.Tensor}: packed little-endian, row-major. F32 is exact and the
 * default; BF16 (round to nearest even, as torch) halves the bytes as a lossy option. Decoding checks dtype,
 * shape and byte length and says which is wrong, so a malformed message fails alone.
 */
public final class TensorCodec {
    /*
     * Little-endian views for the bf16 loops: plain array and segment accesses that C2 compiles to single loads
     * and stores. Indexed ShortBuffer get/put cost about twice as much (2 × 131 µs per 32 × 4096 tensor).
     */
    private static final VarHandle BF16_BYTES = MethodHandles.byteArrayViewVarHandle(short[].class,
            ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt BF16_PAIR = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private TensorCodec() {
    }

    /** rows × cols floats of src from {@code off}, as an F32 (or lossy BF16) tensor. */
    public static Tensor encode(float[] src, int off, int rows, int cols, DType dtype) {
        int n = rows * cols;
        byte[] bytes;
        if (dtype == DType.DTYPE_BF16) {
            bytes = new byte[n * 2];
            for (int i = 0; i < n; i++) {
                BF16_BYTES.set(bytes, 2 * i, toBf16(src[off + i]));
            }
        } else if (dtype == DType.DTYPE_F32 || dtype == DType.DTYPE_UNSPECIFIED) {
            ByteBuffer buf = ByteBuffer.allocate(n * 4).order(ByteOrder.LITTLE_ENDIAN);
            buf.asFloatBuffer().put(src, off, n);
            bytes = buf.array();
        } else {
            throw new IllegalArgumentException("tensors travel as DTYPE_F32 or DTYPE_BF16, not " + dtype);
        }
        return Tensor.newBuilder().setDtype(dtype == DType.DTYPE_BF16 ? DType.DTYPE_BF16 : DType.DTYPE_F32)
                .addShape(rows).addShape(cols).setData(UnsafeByteOperations.unsafeWrap(bytes)).build();
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
                // Two bf16 values per int load: the low half is the even element, the high half the odd one.
                MemorySegment in = MemorySegment.ofBuffer(data.asReadOnlyByteBuffer());
                int i = 0;
                for (; i + 1 < n; i += 2) {
                    int pair = in.get(BF16_PAIR, 2L * i);
                    dst[off + i] = Float.intBitsToFloat(pair << 16);
                    dst[off + i + 1] = Float.intBitsToFloat(pair & 0xffff0000);
                }
                if (i < n) {
                    dst[off + i] = Float.intBitsToFloat((in.get(BF16, 2L * i) & 0xffff) << 16);
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
