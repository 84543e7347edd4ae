package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ExpTest {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    @ParameterizedTest(name = "[{0}, {1}]")
    @CsvSource({"-87, 88", "-1, 1", "-0.001, 0.001", "-20, 0"})
    void exp_withinTwoUlpOfTheCorrectlyRoundedResult(float lo, float hi) {
        SplittableRandom rnd = new SplittableRandom(7);
        for (int i = 0; i < 200_000; i++) {
            float x = lo + (float) rnd.nextDouble() * (hi - lo);
            float exact = (float) Math.exp(x);
            assertThat(Exp.of(x)).as("e^%s", x).isCloseTo(exact, within(2 * Math.ulp(exact)));
        }
    }

    @Test
    void kernels_giveTheScalarBits_inVectorBodyAndTail_evenOnceCompiled() {
        SplittableRandom rnd = new SplittableRandom(11);
        int n = 4 * F.length() + 5;
        float[] x = new float[n];
        float[] up = new float[n];
        for (int round = 0; round < 20_000; round++) {
            for (int i = 0; i < n; i++) {
                x[i] = (float) (rnd.nextGaussian() * 30);
                up[i] = (float) rnd.nextGaussian();
            }
            float[] silu = x.clone();
            Exp.siluMul(silu, up, 0, n);
            float[] shifted = x.clone();
            float max = 3f;
            Exp.shiftedInPlace(shifted, 0, n, max);
            for (int i = 0; i < n; i++) {
                float g = x[i];
                float scalarSilu = (g / (Exp.of(-g) + 1f)) * up[i];
                float scalarShifted = Exp.of(g - max);
                if (Float.floatToRawIntBits(silu[i]) != Float.floatToRawIntBits(scalarSilu)
                        || Float.floatToRawIntBits(shifted[i]) != Float.floatToRawIntBits(scalarShifted)) {
                    assertThat(new float[] {silu[i], shifted[i]}).as("round %d, element %d (x = %s)", round, i, g)
                            .containsExactly(scalarSilu, scalarShifted);
                }
            }
        }
    }

    @Test
    void exp_clampsAtTheEdges_andKeepsNaN() {
        assertThat(Exp.of(0f)).isEqualTo(1f);
        assertThat(Exp.of(-1000f)).isPositive().isLessThan(1e-37f);
        assertThat(Exp.of(Float.NEGATIVE_INFINITY)).isPositive().isLessThan(1e-37f);
        assertThat(Exp.of(100f)).isGreaterThan(1e38f).isFinite();
        assertThat(Exp.of(Float.NaN)).isNaN();
    }
}
