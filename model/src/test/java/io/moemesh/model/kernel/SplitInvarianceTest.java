package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A kernel's result for one element must not depend on how its range was cut across threads: a request thread
 * that runs the whole range itself has to give the bits the kernel threads give.
 */
class SplitInvarianceTest {
    private static final int L = FloatVector.SPECIES_PREFERRED.length();

    @ParameterizedTest(name = "cut at {0}")
    @ValueSource(ints = {1, 3, 5, 7, 13, 17, 100})
    void siluMul_sameBits_wheneverTheRangeIsCut(int cut) {
        int n = 256 * L + 3;
        float[] gate = gaussian(n, 1, 8);
        float[] up = gaussian(n, 2, 1);
        // Repeated until C2 has compiled the kernel: the interpreter's EXP is Math.exp in every lane, so a
        // difference between the vector body and the tail shows only in compiled code.
        for (int round = 0; round < 3_000; round++) {
            float[] whole = gate.clone();
            VectorOps.siluMul(whole, up, 0, n);
            float[] pieces = gate.clone();
            int c = Math.min(cut, n);
            VectorOps.siluMul(pieces, up, 0, c);
            VectorOps.siluMul(pieces, up, c, n - c);
            if (!java.util.Arrays.equals(pieces, whole)) {
                assertThat(pieces).as("round %d", round).containsExactly(whole);
            }
        }
    }

    private static float[] gaussian(int n, long seed, double scale) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextGaussian() * scale);
        }
        return x;
    }
}
