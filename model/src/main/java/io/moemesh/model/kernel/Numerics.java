package io.moemesh.model.kernel;

import io.moemesh.model.safetensors.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Scalar dtype widening (bf16/f16 → float32) as torch does it: exact, no rounding involved. */
public final class Numerics {
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Numerics() {
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    public static float load(MemorySegment seg, DType dtype, long index) {
        return switch (dtype) {
            case F32 -> seg.getAtIndex(F32, index);
            case BF16 -> bf16ToFloat(seg.getAtIndex(I16, index));
            case F16 -> Float.float16ToFloat(seg.getAtIndex(I16, index));
        };
    }

    /** Widens {@code n} elements starting at element {@code index} into {@code out[off..]}. */
    public static void widen(MemorySegment seg, DType dtype, long index, float[] out, int off, int n) {
        switch (dtype) {
            case F32 -> MemorySegment.copy(seg, F32, index * 4, out, off, n);
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[off + i] = bf16ToFloat(seg.getAtIndex(I16, index + i));
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[off + i] = Float.float16ToFloat(seg.getAtIndex(I16, index + i));
                }
            }
        }
    }
}
