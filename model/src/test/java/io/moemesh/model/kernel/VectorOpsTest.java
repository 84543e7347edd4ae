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

    /**
     * torch's CPU softmax over the last dim (router gates, eager attention) normalises by multiplying with the
     * reciprocal of the sum ({@code _vec_softmax_lastdim}: {@code tmp_sum = 1 / tmp_sum; x * tmp_sum}); a division
     * differs in the last bit for some weights (this row has such weights: the test would not tell otherwise).
     */
    @ParameterizedTest(name = "n = {0}")
    @ValueSource(ints = {60, 64, 129})
    void softmax_multipliesByTheReciprocalOfTheSum_asTorch(int n) {
        SplittableRandom rnd = new SplittableRandom(31 + n);
        float[] x = new float[n + 3];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextDouble(-4, 4);
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[2 + i]);
        }
        float[] e = new float[n];
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            e[i] = (float) Math.exp(x[2 + i] - max);
            sum += e[i];
        }
        float r = 1f / sum;
        boolean divisionDiffers = false;
        for (int i = 0; i < n; i++) {
            divisionDiffers |= e[i] * r != e[i] / sum;
        }
        assertThat(divisionDiffers).as("a row where x / sum and x * (1 / sum) differ").isTrue();

        float[] y = x.clone();
        VectorOps.softmax(y, 2, n);
        for (int i = 0; i < n; i++) {
            assertThat(Float.floatToRawIntBits(y[2 + i])).as("element %d", i)
                    .isEqualTo(Float.floatToRawIntBits(e[i] * r));
        }
        assertThat(y[0]).isEqualTo(x[0]);
        assertThat(y[n + 2]).isEqualTo(x[n + 2]);

        float[] z = x.clone();
        System.arraycopy(e, 0, z, 2, n);
        VectorOps.normalise(z, 2, n, sum);
        for (int i = 0; i < n; i++) {
            assertThat(Float.floatToRawIntBits(z[2 + i])).as("normalise, element %d (vector body or tail)", i)
                    .isEqualTo(Float.floatToRawIntBits(e[i] * r));
        }
        assertThat(z[n + 2]).isEqualTo(x[n + 2]);
    }
}
