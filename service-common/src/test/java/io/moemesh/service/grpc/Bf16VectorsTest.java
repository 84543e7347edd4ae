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
 * byte offset, of native memory (Netty's direct buffers, the arena) and of a byte array.
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
}
