package io.moemesh.service.grpc;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * bfloat16 ⇄ float32 of whole arrays with the Vector API (JEP 508, incubating), for the hop's bf16 wire option.
 *
 * <p>Decoding widens every activation and output received: one load of little-endian shorts, a widening conversion
 * and a shift per vector, straight from the received buffer or the arena into the float array.
 *
 * <p>Encoding rounds to nearest even with integer lane arithmetic ({@code bits + 0x7fff + (bits >>> 16 & 1)}, NaN
 * blended to the canonical quiet NaN), then takes the upper halves of two int vectors at once with one two-vector
 * {@code selectFrom} on shorts (AVX-512BW {@code vpermt2w}) and stores them into a {@code short[]} chunk, which the
 * caller copies in bulk to its bytes. Storing the shorts into a byte-array segment instead is not intrinsified by
 * this JDK (C2 logs {@code not supported: op=store etype=short atype=byte}) and falls back to the Vector API's Java
 * code: that is what made the first attempt (a narrowing {@code convertShape} stored into the byte chunk) run at
 * 134–218 µs per 32 × 4096 tensor against 103 µs scalar. This form, as the hop writes (JMH
 * {@code Bf16ConversionBenchmark.encodeChunked}, docs/performance.md): 16.3 ± 0.6 µs against 109.2 ± 2.4 µs for the
 * per-element loop it replaced ({@code encodePerElement}), same run. It is used where it was measured, a
 * 512-bit preferred vector shape ({@link #VECTOR_ENCODE}); elsewhere the scalar rule runs. Integer arithmetic
 * only, so the bits are the scalar rule's in every JIT tier (a jqwik property checks them).
 */
public final class Bf16Vectors {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    /** As many short lanes as F has float lanes: half the bits. */
    private static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(I.vectorBitSize() / 2));
    /** Shorts of I's full width: twice I's lanes, the upper halves of two int vectors. */
    private static final VectorSpecies<Short> W = VectorSpecies.of(short.class, I.vectorShape());
    /** Two-vector selection of every odd short lane (the upper half of each int, little-endian) of a and then b. */
    private static final ShortVector UPPER_HALVES;
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Vectors where measured (a 512-bit preferred shape: AVX-512 here); the scalar rule elsewhere. */
    static final boolean VECTOR_ENCODE = I.vectorBitSize() == 512;

    static {
        short[] odd = new short[W.length()];
        for (int i = 0; i < odd.length; i++) {
            odd[i] = (short) (2 * i + 1);
        }
        UPPER_HALVES = ShortVector.fromArray(W, odd, 0);
    }

    private Bf16Vectors() {
    }

    /**
     * Writes {@code n} floats of {@code src} from {@code off} as bf16 bit patterns into {@code dst} from
     * {@code dstOff}: {@link TensorCodec#toBf16(float)} for each, with vectors where {@link #VECTOR_ENCODE}.
     */
    public static void encode(float[] src, int off, short[] dst, int dstOff, int n) {
        int i = 0;
        if (VECTOR_ENCODE) {
            int lanes = W.length();
            int half = I.length();
            for (int bound = n - lanes; i <= bound; i += lanes) {
                ShortVector a = rounded(FloatVector.fromArray(F, src, off + i).reinterpretAsInts())
                        .reinterpretAsShorts();
                ShortVector b = rounded(FloatVector.fromArray(F, src, off + i + half).reinterpretAsInts())
                        .reinterpretAsShorts();
                UPPER_HALVES.selectFrom(a, b).intoArray(dst, dstOff + i);
            }
        }
        for (; i < n; i++) {
            dst[dstOff + i] = TensorCodec.toBf16(src[off + i]);
        }
    }

    /** Float bits rounded to nearest even at bit 16 (the bf16 is the upper half); NaN → the quiet NaN 0x7fc0. */
    private static IntVector rounded(IntVector bits) {
        IntVector r = bits.add(bits.lanewise(VectorOperators.LSHR, 16).and(1)).add(0x7fff);
        return r.blend(0x7fc00000, bits.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000));
    }

    /** Reads {@code n} bf16 values from {@code src} at byte {@code at} into {@code dst} from {@code off}. */
    public static void decode(MemorySegment src, long at, float[] dst, int off, int n) {
        int lanes = F.length();
        int i = 0;
        for (int bound = n - lanes; i <= bound; i += lanes) {
            ShortVector s = ShortVector.fromMemorySegment(S, src, at + 2L * i, ByteOrder.LITTLE_ENDIAN);
            ((IntVector) s.convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats().intoArray(dst, off + i);
        }
        for (; i < n; i++) {
            dst[off + i] = Float.intBitsToFloat((src.get(BF16, at + 2L * i) & 0xffff) << 16);
        }
    }
}
