package io.moemesh.service.grpc;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.io.IOException;
import java.io.OutputStream;
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
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
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
        ByteString data = t.getData();
        check(what, t.getDtype(), shape, data.size(), rows, cols);
        ByteBuffer in = data.asReadOnlyByteBuffer();
        new TensorReader(t.getDtype(), rows * cols, dst, off).accept(in);
    }

    /**
     * The rules a received [rows, cols] tensor must meet, in the order they are reported: shape, size, dtype,
     * then byte length = rows × cols × element size. IllegalArgumentException names {@code what} and the rule.
     */
    public static void check(String what, DType dtype, long[] shape, long byteLength, int rows, int cols) {
        if (shape.length != 2 || shape[0] != rows || shape[1] != cols) {
            throw new IllegalArgumentException(what + ": shape " + Arrays.toString(shape) + " does not match ["
                    + rows + ", " + cols + "]");
        }
        if ((long) rows * cols > Integer.MAX_VALUE / 4 || rows < 0 || cols < 0) {
            throw new IllegalArgumentException(what + ": [" + rows + ", " + cols + "] is too large for one message");
        }
        long n = (long) rows * cols;
        switch (dtype) {
            case DTYPE_F32 -> checkBytes(what, byteLength, n * 4, dtype);
            case DTYPE_BF16 -> checkBytes(what, byteLength, n * 2, dtype);
            default -> throw new IllegalArgumentException(what + ": dtype " + dtype
                    + " is not supported (DTYPE_F32, or DTYPE_BF16 as a lossy option)");
        }
    }

    /** Bytes per element of a wire dtype (F32 for anything but BF16, as {@link #encode} sends). */
    public static int elementBytes(DType dtype) {
        return dtype == DType.DTYPE_BF16 ? 2 : 4;
    }

    /**
     * Writes {@code n} floats of {@code src} from {@code off} as F32 (or BF16) little-endian bytes to {@code out},
     * converted chunk by chunk through a {@link HopBufferPool} chunk that stays in cache: for gRPC's framer
     * {@code out} writes into pooled direct Netty buffers, so the payload is never a message-sized byte[]. The
     * chunk goes back to the pool whether or not the write fails.
     */
    public static void write(float[] src, int off, int n, DType dtype, OutputStream out) throws IOException {
        HopBufferPool pool = HopBufferPool.shared();
        HopBufferPool.Chunk c = pool.take();
        try {
            MemorySegment bytes = MemorySegment.ofArray(c.bytes);
            boolean bf16 = dtype == DType.DTYPE_BF16;
            int per = HopBufferPool.CHUNK_BYTES / (bf16 ? 2 : 4);
            for (int done = 0; done < n; ) {
                int k = Math.min(per, n - done);
                if (bf16) {
                    c.bf16(src, off + done, bytes, 0, k);
                    out.write(c.bytes, 0, 2 * k);
                } else {
                    // A bulk copy (memcpy on little-endian hardware), not an element loop.
                    MemorySegment.copy(src, off + done, bytes, F32, 0, k);
                    out.write(c.bytes, 0, 4 * k);
                }
                done += k;
            }
        } finally {
            pool.give(c);
        }
    }

    /**
     * float32 → bf16 (round to nearest even, NaN → quiet NaN) of {@code k} floats as a bulk copy of the raw bits
     * and a branch-free integer loop with a narrowing store. Same results as {@link #toBf16(float)}; kept for the
     * JMH comparison only: C2 did not vectorise the narrowing store and it measured slower than the per-element
     * loop, which {@link Bf16Vectors#encode} replaced in {@link #write}.
     */
    public static void toBf16(float[] src, int off, int[] bits, short[] dst, int k) {
        MemorySegment.copy(MemorySegment.ofArray(src), 4L * off, MemorySegment.ofArray(bits), 0, 4L * k);
        for (int i = 0; i < k; i++) {
            int b = bits[i];
            int rounded = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
            // -1 when |b| > +inf's bits (a NaN), else 0.
            int nan = (0x7f800000 - (b & 0x7fffffff)) >> 31;
            dst[i] = (short) ((rounded & ~nan) | (0x7fc0 & nan));
        }
    }

    /**
     * bf16 → float32 of {@code k} values: a widening shift loop and a bulk copy of the bits. The hop widens with
     * {@link Bf16Vectors} instead; kept as the array form of the rule for tests and the JMH comparison.
     */
    public static void fromBf16(short[] src, int[] bits, float[] dst, int off, int k) {
        for (int i = 0; i < k; i++) {
            bits[i] = src[i] << 16;
        }
        MemorySegment.copy(MemorySegment.ofArray(bits), 0, MemorySegment.ofArray(dst), 4L * off, 4L * k);
    }

    /**
     * Decodes little-endian F32 or BF16 elements arriving in pieces (gRPC's received Netty buffers, in order)
     * into {@code dst}: each piece is read where it lies, without copying the payload into a byte[] first; an
     * element split between two pieces is carried over; bf16 is widened with the Vector API ({@link Bf16Vectors}).
     */
    public static final class TensorReader {
        private final boolean bf16;
        private final int size;
        private final float[] dst;
        private final int end;
        private int at;
        private final byte[] carry = new byte[4];
        private int carried;

        public TensorReader(DType dtype, int n, float[] dst, int off) {
            this.bf16 = dtype == DType.DTYPE_BF16;
            this.size = bf16 ? 2 : 4;
            this.dst = dst;
            this.at = off;
            this.end = off + n;
        }

        /** Reads all of {@code piece} (from its position to its limit). */
        public void accept(ByteBuffer piece) {
            ByteBuffer b = piece.duplicate();
            while (carried > 0 && b.hasRemaining()) {
                carry[carried++] = b.get();
                if (carried == size) {
                    carried = 0;
                    MemorySegment one = MemorySegment.ofArray(carry);
                    dst[at++] = bf16 ? Float.intBitsToFloat((one.get(BF16, 0) & 0xffff) << 16) : one.get(F32, 0);
                }
            }
            int whole = Math.min(b.remaining() / size, end - at);
            if (whole > 0) {
                MemorySegment seg = MemorySegment.ofBuffer(b);
                if (bf16) {
                    Bf16Vectors.decode(seg, 0, dst, at, whole);
                    at += whole;
                } else {
                    MemorySegment.copy(seg, F32, 0, dst, at, whole);
                    at += whole;
                }
                b.position(b.position() + whole * size);
            }
            while (b.hasRemaining() && at < end) {
                carry[carried++] = b.get();
            }
            if (b.hasRemaining()) {
                throw new IllegalStateException("more tensor bytes than elements");
            }
        }

        /** True once every element was read. */
        public boolean complete() {
            return at == end && carried == 0;
        }
    }

    /** Rows of a 2-d tensor, or -1 when it is not 2-d. */
    public static int rows(Tensor t) {
        return t.getShapeCount() == 2 ? (int) Math.min(Integer.MAX_VALUE, t.getShape(0)) : -1;
    }

    private static void checkBytes(String what, long size, long expected, DType dtype) {
        if (size != expected) {
            throw new IllegalArgumentException(what + ": " + size + " bytes of " + dtype + " data, expected "
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
