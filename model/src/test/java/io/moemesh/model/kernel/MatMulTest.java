package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.safetensors.DType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class MatMulTest {

    /** Shapes that exercise full 4×4 tiles, row and column leftovers, the scalar k tail and the parallel split. */
    @ParameterizedTest(name = "{0} m={1} n={2} k={3}")
    @CsvSource({
        "F32, 1, 1, 1", "F32, 1, 4, 16", "F32, 3, 5, 17", "F32, 4, 4, 64", "F32, 7, 130, 33", "F32, 9, 300, 512",
        "BF16, 1, 3, 5", "BF16, 5, 9, 48", "BF16, 8, 260, 100", "BF16, 33, 67, 512",
        "F16, 1, 2, 3", "F16, 6, 70, 40", "F16, 12, 130, 256"
    })
    void matmul_equalsScalarLoops_forEveryDtypeAndOddShape(DType dtype, int m, int n, int k) {
        long seed = m * 31L + n * 7L + k;
        float[] x = FusedKernelsTest.input(m * k, seed);
        Matrix w = FusedKernelsTest.random("w", dtype, n, k, seed + 1);
        float[] y = new float[m * n];
        MatMul.matmul(x, m, w, y);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double ref = 0;
                for (int p = 0; p < k; p++) {
                    ref += (double) x[i * k + p] * w.get(j, p);
                }
                assertThat(y[i * n + j]).as("y[%d,%d]", i, j).isCloseTo((float) ref, within(1e-4f * (1 + (float) Math.sqrt(k))));
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"2, 3, 4, 7", "1, 2, 4, 3"})
    void matmul_rejectsBuffersTooSmall_namingTheWeight(int m, int n, int k, int xLen) {
        Matrix w = Matrix.ofFloats("layer.q_proj", new float[n * k], n, k);
        assertThatThrownBy(() -> MatMul.matmul(new float[xLen], m, w, new float[m * n]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("layer.q_proj");
    }
}
