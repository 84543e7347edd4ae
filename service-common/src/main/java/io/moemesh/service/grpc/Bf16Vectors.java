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
 * bfloat16 → float32 of whole arrays with the Vector API (JEP 508, incubating): the hop's bf16 wire option widens
 * every activation and output it receives. One load of little-endian shorts, a widening conversion and a shift per
 * vector, straight from the received buffer or the arena into the float array: the exact widening, in every JIT
 * tier. The tail (fewer elements than a vector) goes element by element.
 *
 * <p>Encoding stays scalar ({@link TensorCodec#toBf16(float)} per element): the same arithmetic written with the
 * Vector API (a narrowing {@code convertShape} from 512-bit ints to 256-bit shorts, NaNs blended in) ran at 15 µs per
 * 32 × 4096 tensor in a stand-alone loop but at 134–218 µs once inlined into the hop's chunked writer (JMH
 * {@code Bf16ConversionBenchmark.encodeChunked}, against 103 µs for the scalar loop), and fell back to the slow form
 * after recompilation in the stand-alone loop too: not dependable enough for the data path.
 */
public final class Bf16Vectors {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    /** As many short lanes as F has float lanes: half the bits. */
    private static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(I.vectorBitSize() / 2));
    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Bf16Vectors() {
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
