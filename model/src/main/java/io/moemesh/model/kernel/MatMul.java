package io.moemesh.model.kernel;

import io.moemesh.model.safetensors.DType;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code y[m, N] = x[m, K] · Wᵀ} for a weight {@code W[N, K]} in f32 or bf16 (f16 is widened per block):
 * the product of a {@code torch.nn.Linear} without bias. Float32 accumulation; weights widened in registers
 * (bf16 → f32 is a 16-bit shift, exact). Register tiles of 4 activation rows × 4 weight rows keep 16
 * accumulators live, and weight rows are walked in blocks that stay in L2 while every activation row passes.
 */
public final class MatMul {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S = VectorSpecies.of(short.class,
            jdk.incubator.vector.VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final int LANES = F.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** Weight rows per cache block: 64 rows × K=4096 × 2 B = 512 KiB, inside a Zen 4 / Skylake L2. */
    private static final int N_BLOCK = 64;

    private MatMul() {
    }

    /** y[i*N + n] = Σ_k x[i*K + k] · W[n, k] for i < m. */
    public static void matmul(float[] x, int m, Matrix w, float[] y) {
        matmul(x, 0, m, w, y, 0);
    }

    public static void matmul(float[] x, int xOff, int m, Matrix w, float[] y, int yOff) {
        int n = w.rows();
        int k = w.cols();
        if (x.length < xOff + (long) m * k || y.length < yOff + (long) m * n) {
            throw new IllegalArgumentException("matmul " + w.name() + ": x holds " + (x.length - xOff) + " / y holds "
                    + (y.length - yOff) + " floats, need " + (long) m * k + " / " + (long) m * n);
        }
        if (w.dtype() == DType.F16) {
            matmulF16(x, xOff, m, w, y, yOff);
            return;
        }
        boolean bf16 = w.dtype() == DType.BF16;
        MemorySegment seg = w.data();
        Parallel.forRange(n, 4, (long) m * k, (n0, n1) -> rows(x, xOff, m, k, seg, bf16, n0, n1, y, yOff, n));
    }

    /** f16 weights: widen a block of rows to float32 scratch (exact), then the f32 kernel on it. */
    private static void matmulF16(float[] x, int xOff, int m, Matrix w, float[] y, int yOff) {
        int n = w.rows();
        int k = w.cols();
        Parallel.forRange(n, N_BLOCK, (long) m * k, (n0, n1) -> {
            float[] scratch = new float[N_BLOCK * k];
            MemorySegment block = MemorySegment.ofArray(scratch);
            for (int b0 = n0; b0 < n1; b0 += N_BLOCK) {
                int b1 = Math.min(n1, b0 + N_BLOCK);
                Numerics.widen(w.data(), DType.F16, (long) b0 * k, scratch, 0, (b1 - b0) * k);
                // Output rows are offset so that block row r lands in column b0 + r.
                rowsShifted(x, xOff, m, k, block, b0, b1, y, yOff, n);
            }
        });
    }

    private static void rowsShifted(float[] x, int xOff, int m, int k, MemorySegment block, int b0, int b1,
                                    float[] y, int yOff, int ldy) {
        rows(x, xOff, m, k, block, false, 0, b1 - b0, y, yOff + b0, ldy);
    }

    /** Output columns [n0, n1) of all m rows; y row stride {@code ldy}. */
    static void rows(float[] x, int xOff, int m, int k, MemorySegment w, boolean bf16, int n0, int n1,
                     float[] y, int yOff, int ldy) {
        for (int b0 = n0; b0 < n1; b0 += N_BLOCK) {
            int b1 = Math.min(n1, b0 + N_BLOCK);
            int i = 0;
            for (; i + 4 <= m; i += 4) {
                int c = b0;
                for (; c + 4 <= b1; c += 4) {
                    tile4x4(x, xOff + i * k, k, w, bf16, c, y, yOff + i * ldy + c, ldy);
                }
                for (; c < b1; c++) {
                    for (int r = 0; r < 4; r++) {
                        y[yOff + (i + r) * ldy + c] = dot(x, xOff + (i + r) * k, k, w, bf16, c);
                    }
                }
            }
            for (; i < m; i++) {
                int c = b0;
                for (; c + 4 <= b1; c += 4) {
                    tile1x4(x, xOff + i * k, k, w, bf16, c, y, yOff + i * ldy + c);
                }
                for (; c < b1; c++) {
                    y[yOff + i * ldy + c] = dot(x, xOff + i * k, k, w, bf16, c);
                }
            }
        }
    }

    static FloatVector loadW(MemorySegment w, boolean bf16, long element) {
        if (bf16) {
            ShortVector s = ShortVector.fromMemorySegment(S, w, element * 2, LE);
            IntVector wide = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
            return wide.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
        }
        return FloatVector.fromMemorySegment(F, w, element * 4, LE);
    }

    static float loadScalar(MemorySegment w, boolean bf16, long element) {
        return bf16 ? Numerics.bf16ToFloat(w.get(Numerics.I16, element * 2)) : w.get(Numerics.F32, element * 4);
    }

    private static void tile4x4(float[] x, int xo, int k, MemorySegment w, boolean bf16, int c, float[] y, int yo,
                                int ldy) {
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        long w0 = (long) c * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
        int kv = k - k % LANES;
        for (int p = 0; p < kv; p += LANES) {
            FloatVector x0 = FloatVector.fromArray(F, x, xo + p);
            FloatVector x1 = FloatVector.fromArray(F, x, xo + k + p);
            FloatVector x2 = FloatVector.fromArray(F, x, xo + 2 * k + p);
            FloatVector x3 = FloatVector.fromArray(F, x, xo + 3 * k + p);
            FloatVector v = loadW(w, bf16, w0 + p);
            a00 = x0.fma(v, a00); a10 = x1.fma(v, a10); a20 = x2.fma(v, a20); a30 = x3.fma(v, a30);
            v = loadW(w, bf16, w1 + p);
            a01 = x0.fma(v, a01); a11 = x1.fma(v, a11); a21 = x2.fma(v, a21); a31 = x3.fma(v, a31);
            v = loadW(w, bf16, w2 + p);
            a02 = x0.fma(v, a02); a12 = x1.fma(v, a12); a22 = x2.fma(v, a22); a32 = x3.fma(v, a32);
            v = loadW(w, bf16, w3 + p);
            a03 = x0.fma(v, a03); a13 = x1.fma(v, a13); a23 = x2.fma(v, a23); a33 = x3.fma(v, a33);
        }
        y[yo] = tail(a00, x, xo, w, bf16, w0, kv, k);
        y[yo + 1] = tail(a01, x, xo, w, bf16, w1, kv, k);
        y[yo + 2] = tail(a02, x, xo, w, bf16, w2, kv, k);
        y[yo + 3] = tail(a03, x, xo, w, bf16, w3, kv, k);
        y[yo + ldy] = tail(a10, x, xo + k, w, bf16, w0, kv, k);
        y[yo + ldy + 1] = tail(a11, x, xo + k, w, bf16, w1, kv, k);
        y[yo + ldy + 2] = tail(a12, x, xo + k, w, bf16, w2, kv, k);
        y[yo + ldy + 3] = tail(a13, x, xo + k, w, bf16, w3, kv, k);
        y[yo + 2 * ldy] = tail(a20, x, xo + 2 * k, w, bf16, w0, kv, k);
        y[yo + 2 * ldy + 1] = tail(a21, x, xo + 2 * k, w, bf16, w1, kv, k);
        y[yo + 2 * ldy + 2] = tail(a22, x, xo + 2 * k, w, bf16, w2, kv, k);
        y[yo + 2 * ldy + 3] = tail(a23, x, xo + 2 * k, w, bf16, w3, kv, k);
        y[yo + 3 * ldy] = tail(a30, x, xo + 3 * k, w, bf16, w0, kv, k);
        y[yo + 3 * ldy + 1] = tail(a31, x, xo + 3 * k, w, bf16, w1, kv, k);
        y[yo + 3 * ldy + 2] = tail(a32, x, xo + 3 * k, w, bf16, w2, kv, k);
        y[yo + 3 * ldy + 3] = tail(a33, x, xo + 3 * k, w, bf16, w3, kv, k);
    }

    private static void tile1x4(float[] x, int xo, int k, MemorySegment w, boolean bf16, int c, float[] y, int yo) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        long w0 = (long) c * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
        int kv = k - k % LANES;
        for (int p = 0; p < kv; p += LANES) {
            FloatVector x0 = FloatVector.fromArray(F, x, xo + p);
            a0 = x0.fma(loadW(w, bf16, w0 + p), a0);
            a1 = x0.fma(loadW(w, bf16, w1 + p), a1);
            a2 = x0.fma(loadW(w, bf16, w2 + p), a2);
            a3 = x0.fma(loadW(w, bf16, w3 + p), a3);
        }
        y[yo] = tail(a0, x, xo, w, bf16, w0, kv, k);
        y[yo + 1] = tail(a1, x, xo, w, bf16, w1, kv, k);
        y[yo + 2] = tail(a2, x, xo, w, bf16, w2, kv, k);
        y[yo + 3] = tail(a3, x, xo, w, bf16, w3, kv, k);
    }

    private static float dot(float[] x, int xo, int k, MemorySegment w, boolean bf16, int c) {
        FloatVector a = FloatVector.zero(F);
        long w0 = (long) c * k;
        int kv = k - k % LANES;
        for (int p = 0; p < kv; p += LANES) {
            a = FloatVector.fromArray(F, x, xo + p).fma(loadW(w, bf16, w0 + p), a);
        }
        return tail(a, x, xo, w, bf16, w0, kv, k);
    }

    /** Horizontal sum of the accumulator plus the scalar tail k ∈ [kv, k). */
    private static float tail(FloatVector acc, float[] x, int xo, MemorySegment w, boolean bf16, long w0, int kv,
                              int k) {
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (int p = kv; p < k; p++) {
            s += x[xo + p] * loadScalar(w, bf16, w0 + p);
        }
        return s;
    }
}
