package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/**
 * The Vector API's bf16 widening is exact for any bits, any length (whole vectors and the element-wise tail) and any
 * byte offset, of native memory (Netty's direct buffers, the arena) and of a byte array; its rounding gives the scalar
 * rule's bits for any float bits (NaNs, infinities, subnormals, ties) at any offsets.
 */
class Bf16VectorsTest {
    private static final ValueLayout.OfShort LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Property(tries = 300)
    void decode_isTheExactWidening(@ForAll @Size(max = 70) short[] halves, @ForAll @IntRange(max = 5) int offset,
                                   @ForAll boolean heap) {
        try (Arena arena = Arena.ofConfined()) {
            long bytes = 2L * halves.length + offset;
            MemorySegment src = heap ? MemorySegment.ofArray(new byte[(int) bytes]) : arena.allocate(bytes);
            for (int i = 0; i < halves.length; i++) {
                src.set(LE, offset + 2L * i, halves[i]);
            }
            float[] dst = new float[halves.length + 2];
            Bf16Vectors.decode(src, offset, dst, 2, halves.length);
            for (int i = 0; i < halves.length; i++) {
                assertThat(Float.floatToRawIntBits(dst[i + 2])).isEqualTo((halves[i] & 0xffff) << 16);
            }
        }
    }

    @Property(tries = 300)
    void encode_isTheScalarRounding(@ForAll @Size(max = 200) int[] bits, @ForAll @IntRange(max = 5) int off,
                                    @ForAll @IntRange(max = 5) int dstOff) {
        float[] src = new float[off + bits.length];
        for (int i = 0; i < bits.length; i++) {
            src[off + i] = Float.intBitsToFloat(bits[i]);
        }
        short[] dst = new short[dstOff + bits.length + 1];
        dst[dstOff + bits.length] = 0x1234;
        Bf16Vectors.encode(src, off, dst, dstOff, bits.length);
        for (int i = 0; i < bits.length; i++) {
            assertThat(dst[dstOff + i]).as("bits %08x", bits[i]).isEqualTo(TensorCodec.toBf16(src[off + i]));
        }
        assertThat(dst[dstOff + bits.length]).as("nothing written past n").isEqualTo((short) 0x1234);
    }

    /** The edge cases by name, in a whole vector's worth (so the vector path, not the tail, rounds them). */
    @org.junit.jupiter.api.Test
    void encode_edgeCasesInAWholeVector() {
        int[] edge = {0x7fc00000, 0xffc00001, 0x7f800001, 0xff800001, 0x7f800000, 0xff800000, 0x7f7fffff, 0x7f7f8000,
            0x00000001, 0x80000000, 0x00008000, 0x00018000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x7fffffff, 0x3f807fff,
            0xbf808000, 0x00000000, 0x007fffff};
        float[] src = new float[64];
        for (int i = 0; i < src.length; i++) {
            src[i] = Float.intBitsToFloat(edge[i % edge.length]);
        }
        short[] dst = new short[64];
        Bf16Vectors.encode(src, 0, dst, 0, 64);
        for (int i = 0; i < 64; i++) {
            assertThat(dst[i]).as("bits %08x", edge[i % edge.length]).isEqualTo(TensorCodec.toBf16(src[i]));
        }
    }
}
