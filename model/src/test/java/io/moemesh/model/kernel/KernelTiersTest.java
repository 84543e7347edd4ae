package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.safetensors.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The kernels give the same bits whether the JIT has compiled them or not: the rule that lets a service report
 * SERVING before its kernels are warm (cold start, issue 12) without its first answers differing in the last bit
 * from its later ones or from another instance's ({@link LaneSums}). A child JVM computes every kernel in the
 * interpreter ({@code -Xint}); this JVM computes the same cold and again after compiling them.
 */
class KernelTiersTest {

    @Test
    void kernels_giveTheSameBits_interpretedAndCompiled() throws Exception {
        String cold = Probe.run();
        MatMul.warmUp();
        for (int i = 0; i < 150; i++) {
            Probe.run();
        }
        String compiled = Probe.run();
        String interpreted = interpreted();

        assertThat(compiled).as("compiled vs this JVM's first (cold) run").isEqualTo(cold);
        assertThat(interpreted).as("-Xint child vs compiled").isEqualTo(compiled);
    }

    private static String interpreted() throws IOException, InterruptedException {
        String java = ProcessHandle.current().info().command().orElse("java");
        Process p = new ProcessBuilder(java, "-Xint", "--add-modules", "jdk.incubator.vector",
                "-cp", System.getProperty("java.class.path"), Probe.class.getName())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertThat(p.waitFor(120, TimeUnit.SECONDS)).as("the -Xint probe finished").isTrue();
        assertThat(p.exitValue()).as("the -Xint probe's exit code").isZero();
        return out;
    }

    /** Every kernel entry point on fixed inputs, all row counts of a tile and odd lengths; the bits as hex. */
    public static final class Probe {
        public static void main(String[] args) {
            System.out.println(run());
        }

        static String run() {
            List<float[]> results = new ArrayList<>();
            SplittableRandom rnd = new SplittableRandom(20261205);
            for (DType dtype : new DType[] {DType.F32, DType.BF16}) {
                for (int k : new int[] {100, 263}) {
                    int n = 33;
                    Matrix a = matrix(rnd, dtype, n, k);
                    Matrix b = matrix(rnd, dtype, n, k);
                    for (int m : new int[] {1, 2, 3, 5, 16}) {
                        float[] x = floats(rnd, m * k);
                        float[] y = new float[m * n];
                        MatMul.matmul(x, m, a, y);
                        results.add(y);
                        float[] y2 = new float[m * n];
                        float[] u2 = new float[m * n];
                        MatMul.matmul(x, m, new Matrix[] {a, b}, new float[][] {y2, u2});
                        results.add(y2);
                        results.add(u2);
                        float[] h = new float[m * n];
                        float[] u = new float[m * n];
                        MatMul.swiGlu(x, m, a, b, h, u);
                        results.add(h);
                    }
                }
            }
            float[] v = floats(rnd, 263);
            float[] w = floats(rnd, 263);
            results.add(new float[] {VectorOps.dot(v, 0, w, 0, 263), VectorOps.sumOfSquares(v, 0, 263)});
            float[] norm = new float[263];
            VectorOps.rmsNorm(v, 0, w, 1e-5f, norm, 0, 1, 263);
            results.add(norm);
            float[] soft = v.clone();
            VectorOps.softmax(soft, 0, 263);
            results.add(soft);
            StringBuilder sb = new StringBuilder();
            for (float[] r : results) {
                for (float f : r) {
                    sb.append(Integer.toHexString(Float.floatToRawIntBits(f))).append(' ');
                }
                sb.append('|');
            }
            return sb.toString();
        }

        private static float[] floats(SplittableRandom rnd, int n) {
            float[] f = new float[n];
            for (int i = 0; i < n; i++) {
                f[i] = (float) (rnd.nextDouble() * 2 - 1);
            }
            return f;
        }

        private static Matrix matrix(SplittableRandom rnd, DType dtype, int rows, int cols) {
            float[] f = floats(rnd, rows * cols);
            if (dtype == DType.F32) {
                return Matrix.ofFloats("probe", f, rows, cols);
            }
            short[] bf16 = new short[f.length];
            for (int i = 0; i < f.length; i++) {
                bf16[i] = (short) (Float.floatToRawIntBits(f[i]) >>> 16);
            }
            return new Matrix("probe", MemorySegment.ofArray(bf16), DType.BF16, rows, cols);
        }
    }
}
