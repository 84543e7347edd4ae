package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class VectorOpsTest {

    /** Attention scores four keys at a time: each must be the bits of its own {@code dot} (and so of the tier). */
    @ParameterizedTest(name = "n = {0}")
    @ValueSource(ints = {1, 3, 4, 7, 8, 15, 16, 17, 33, 64, 100, 128})
    void dot4_sameBitsAsEachDotAlone(int n) {
        SplittableRandom rnd = new SplittableRandom(n);
        int stride = n + 5;
        float[] a = new float[n + 2];
        float[] b = new float[3 + 4 * stride];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) rnd.nextDouble(-3, 3);
        }
        for (int i = 0; i < b.length; i++) {
            b[i] = (float) rnd.nextDouble(-3, 3);
        }
        float[] out = new float[6];
        VectorOps.dot4(a, 2, b, 3, stride, n, out, 1);
        for (int r = 0; r < 4; r++) {
            float alone = VectorOps.dot(a, 2, b, 3 + r * stride, n);
            assertThat(Float.floatToRawIntBits(out[1 + r])).as("row %d: %s vs %s", r, out[1 + r], alone)
                    .isEqualTo(Float.floatToRawIntBits(alone));
        }
        assertThat(out[0]).isZero();
        assertThat(out[5]).isZero();
    }
}
