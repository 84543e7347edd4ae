package io.moemesh.model.safetensors;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * bf16 conversion checked against its definition (the nearest bf16 value, ties to the even one, overflow past the
 * largest finite to infinity), not against the bit trick the writer uses. Covers every one of the 65536 upper halves
 * with the interesting lower halves (exact, just below / at / just above halfway, largest) plus random ones.
 */
class SafetensorsBfloat16Test {

    private static final int[] LOWER = {0x0000, 0x0001, 0x4000, 0x7FFF, 0x8000, 0x8001, 0xC000, 0xFFFF};

    @Test
    void toBfloat16_everyUpperHalf_isNearestValueWithTiesToEven() {
        SplittableRandom random = new SplittableRandom(1);
        for (int upper = 0; upper <= 0xFFFF; upper++) {
            for (int lower : LOWER) {
                checkNearestEven((upper << 16) | lower);
            }
            checkNearestEven((upper << 16) | random.nextInt(0x10000));
        }
    }

    @Test
    void toBfloat16_everyNan_becomesCanonicalQuietNan() {
        for (int upper : new int[] {0x7F80, 0x7FC0, 0x7FFF, 0xFF80, 0xFFC0, 0xFFFF}) {
            for (int lower = (upper & 0x7F) == 0 ? 1 : 0; lower <= 0xFFFF; lower += 0x1111) {
                float nan = Float.intBitsToFloat((upper << 16) | lower);
                assertThat(Float.isNaN(nan)).isTrue();
                assertThat(SafetensorsWriter.toBfloat16(nan)).isEqualTo((short) 0x7FC0);
            }
        }
    }

    private static void checkNearestEven(int bits) {
        float f = Float.intBitsToFloat(bits);
        if (Float.isNaN(f)) {
            return;
        }
        int down = bits & 0xFFFF0000; // toward zero
        int up = down + 0x10000; // away from zero (may be infinity)
        double dDown = Math.abs(f - magnitude(down));
        double dUp = Math.abs(f - magnitude(up));
        int expected;
        if (Float.isInfinite(f) || dDown < dUp) {
            expected = down >>> 16;
        } else if (dUp < dDown) {
            expected = up >>> 16;
        } else {
            expected = ((down >>> 16) & 1) == 0 ? down >>> 16 : up >>> 16;
        }
        assertThat(SafetensorsWriter.toBfloat16(f) & 0xFFFF).as("bits %08x", bits).isEqualTo(expected & 0xFFFF);
    }

    /** The value of float bits, where the infinity just past the largest finite counts as 2^128 (IEEE overflow rule). */
    private static double magnitude(int bits) {
        if ((bits & 0x7FFFFFFF) == 0x7F800000) {
            return Math.copySign(Math.scalb(1.0, 128), Float.intBitsToFloat(bits));
        }
        return Float.intBitsToFloat(bits);
    }
}
