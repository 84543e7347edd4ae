package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.safetensors.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The fused entry points (q/k/v in one pass, SwiGLU gate and up in one pass) and the OpenBLAS path. */
class FusedKernelsTest {

    /*
     * Fused and alone run the same tiles over the same rows (the weights' row counts are multiples of 4, so no
     * split across threads cuts a tile), and the lane sums' order does not depend on the JIT tier (LaneSum): bit
     * for bit, compiled or not.
     */

    static Matrix random(String name, DType dtype, int rows, int cols, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        MemorySegment seg = MemorySegment.ofArray(new byte[rows * cols * dtype.bytes()]);
        ValueLayout.OfShort i16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        ValueLayout.OfFloat f32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows * cols; i++) {
            float v = (float) (rnd.nextGaussian() * 0.1);
            switch (dtype) {
                case F32 -> seg.setAtIndex(f32, i, v);
                case BF16 -> seg.setAtIndex(i16, i, (short) (Float.floatToRawIntBits(v) >>> 16));
                case F16 -> seg.setAtIndex(i16, i, Float.floatToFloat16(v));
            }
        }
        return new Matrix(name, seg, dtype, rows, cols);
    }

    static float[] input(int n, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) rnd.nextGaussian();
        }
        return x;
    }

    static double dot(float[] x, int row, Matrix w, int c) {
        double s = 0;
        for (int p = 0; p < w.cols(); p++) {
            s += (double) x[row * w.cols() + p] * w.get(c, p);
        }
        return s;
    }

    @ParameterizedTest(name = "{0} m={1} k={2}")
    @CsvSource({"F32, 1, 64", "F32, 6, 70", "BF16, 1, 64", "BF16, 5, 96", "BF16, 9, 100", "F16, 3, 40"})
    void fusedMatmul_bitIdenticalToEachProjectionAlone(DType dtype, int m, int k) {
        Matrix[] ws = {random("q", dtype, 36, k, 1), random("k", dtype, 12, k, 2), random("v", dtype, 12, k, 3)};
        float[] x = input(m * k, 4);
        float[][] fused = {new float[m * 36], new float[m * 12], new float[m * 12]};
        MatMul.matmul(x, m, ws, fused);
        for (int j = 0; j < ws.length; j++) {
            float[] alone = new float[m * ws[j].rows()];
            MatMul.matmul(x, m, ws[j], alone);
            assertThat(fused[j]).as(ws[j].name()).containsExactly(alone);
        }
    }

    @ParameterizedTest(name = "{0} m={1} k={2} f={3}")
    @CsvSource({"F32, 1, 64, 40", "F32, 7, 33, 130", "BF16, 1, 128, 96", "BF16, 6, 100, 70", "BF16, 12, 64, 300",
        "F16, 2, 32, 20"})
    void swiGlu_equalsSiluOfGateTimesUp(DType dtype, int m, int k, int f) {
        Matrix gate = random("gate", dtype, f, k, 5);
        Matrix up = random("up", dtype, f, k, 6);
        float[] x = input(m * k, 7);
        float[] h = new float[m * f];
        MatMul.swiGlu(x, m, gate, up, h, new float[m * f]);
        for (int i = 0; i < m; i++) {
            for (int r = 0; r < f; r++) {
                double g = dot(x, i, gate, r);
                double ref = g / (1 + Math.exp(-g)) * dot(x, i, up, r);
                assertThat(h[i * f + r]).as("h[%d,%d]", i, r).isCloseTo((float) ref, within(2e-4f * (1 + (float) Math.sqrt(k))));
            }
        }
    }

    /** Every leftover of the 4-row tiles (1, 2 or 3 rows take other kernels), with and without a k tail. */
    @ParameterizedTest(name = "m={0} k={1}")
    @CsvSource({"1, 96", "2, 96", "3, 96", "4, 96", "5, 100", "6, 100", "7, 100", "8, 64", "11, 161"})
    void bf16_everyRowRemainder_equalsScalarLoops(int m, int k) {
        Matrix w = random("w", DType.BF16, 37, k, 10);
        float[] x = input(m * k, 11);
        float[] y = new float[m * 37];
        MatMul.matmul(x, m, w, y);
        for (int i = 0; i < m; i++) {
            for (int c = 0; c < 37; c++) {
                assertThat(y[i * 37 + c]).as("y[%d,%d]", i, c)
                        .isCloseTo((float) dot(x, i, w, c), within(1e-4f * (1 + (float) Math.sqrt(k))));
            }
        }
    }

    /** From {@link MatMul#BLAS_MIN_ROWS} rows, f32 weights go to OpenBLAS when it loads: same products. */
    @ParameterizedTest(name = "m={0} n={1} k={2}")
    @CsvSource({"48, 70, 96", "64, 9, 33", "100, 130, 64"})
    void f32LargeBatch_equalsScalarLoops(int m, int n, int k) {
        Matrix w = random("w", DType.F32, n, k, 8);
        float[] x = input(m * k, 9);
        float[] y = new float[m * n + 3];
        MatMul.matmul(x, 0, m, w, y, 3);
        for (int i = 0; i < m; i++) {
            for (int c = 0; c < n; c++) {
                assertThat(y[3 + i * n + c]).isCloseTo((float) dot(x, i, w, c), within(1e-4f * (1 + (float) Math.sqrt(k))));
            }
        }
    }
}
