package io.moemesh.model.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Element-wise float32 operations of a transformer layer, vectorised, in the order torch evaluates them. */
public final class VectorOps {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    private VectorOps() {
    }

    /**
     * RMSNorm of {@code rows} rows of length {@code n} (transformers' MixtralRMSNorm et al.):
     * {@code w · (x · rsqrt(mean(x²) + eps))}, all in float32.
     */
    public static void rmsNorm(float[] x, int xOff, float[] w, float eps, float[] out, int outOff, int rows, int n) {
        for (int r = 0; r < rows; r++) {
            int xo = xOff + r * n;
            int oo = outOff + r * n;
            float ss = sumOfSquares(x, xo, n);
            float inv = (float) (1.0 / Math.sqrt((float) (ss / n) + eps));
            int i = 0;
            for (int bound = F.loopBound(n); i < bound; i += F.length()) {
                FloatVector v = FloatVector.fromArray(F, x, xo + i).mul(inv);
                v.mul(FloatVector.fromArray(F, w, i)).intoArray(out, oo + i);
            }
            for (; i < n; i++) {
                out[oo + i] = w[i] * (x[xo + i] * inv);
            }
        }
    }

    static float sumOfSquares(float[] x, int off, int n) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector v = FloatVector.fromArray(F, x, off + i);
            acc = v.fma(v, acc);
        }
        // LaneSum's order, not reduceLanes(ADD), whose order depends on the JIT tier.
        float s = LaneSum.sum(acc);
        for (; i < n; i++) {
            s += x[off + i] * x[off + i];
        }
        return s;
    }

    public static float dot(float[] a, int ao, float[] b, int bo, int n) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            acc = FloatVector.fromArray(F, a, ao + i).fma(FloatVector.fromArray(F, b, bo + i), acc);
        }
        // LaneSum's order, not reduceLanes(ADD), whose order depends on the JIT tier.
        float s = LaneSum.sum(acc);
        for (; i < n; i++) {
            s += a[ao + i] * b[bo + i];
        }
        return s;
    }

    /**
     * {@link #dot} of {@code a[ao, ao + n)} with four rows of b, at {@code bo}, {@code bo + stride}, {@code bo + 2 ·
     * stride} and {@code bo + 3 · stride}, into {@code out[oo, oo + 4)}: each the same bits as {@code dot} of that
     * row. The four accumulators are folded together (LaneSum's butterfly, two levels) before the last levels of
     * the tree run in one vector: 6 selects and 2 rearranges for the four sums instead of 4 rearranges each (an
     * attention score, n = head_dim, is mostly its lane sum).
     */
    public static void dot4(float[] a, int ao, float[] b, int bo, int stride, int n, float[] out, int oo) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int b1 = bo + stride, b2 = b1 + stride, b3 = b2 + stride;
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector x = FloatVector.fromArray(F, a, ao + i);
            a0 = x.fma(FloatVector.fromArray(F, b, bo + i), a0);
            a1 = x.fma(FloatVector.fromArray(F, b, b1 + i), a1);
            a2 = x.fma(FloatVector.fromArray(F, b, b2 + i), a2);
            a3 = x.fma(FloatVector.fromArray(F, b, b3 + i), a3);
        }
        FloatVector c0 = LaneSum.LO_1.selectFrom(a0, a1).add(LaneSum.HI_1.selectFrom(a0, a1));
        FloatVector c1 = LaneSum.LO_1.selectFrom(a2, a3).add(LaneSum.HI_1.selectFrom(a2, a3));
        FloatVector e = LaneSum.LO_2.selectFrom(c0, c1).add(LaneSum.HI_2.selectFrom(c0, c1));
        // Now L/4 partial sums per row, row r's in lanes [r · L/4, (r + 1) · L/4): the tree's last levels.
        int q = F.length() / 4;
        if (q == 4) {
            e = e.add(e.rearrange(LaneSum.HALVE_2));
        }
        if (q >= 2) {
            e = e.add(e.rearrange(LaneSum.HALVE_1));
        }
        float s0 = e.lane(0), s1 = e.lane(q), s2 = e.lane(2 * q), s3 = e.lane(3 * q);
        for (; i < n; i++) {
            float x = a[ao + i];
            s0 += x * b[bo + i];
            s1 += x * b[b1 + i];
            s2 += x * b[b2 + i];
            s3 += x * b[b3 + i];
        }
        out[oo] = s0;
        out[oo + 1] = s1;
        out[oo + 2] = s2;
        out[oo + 3] = s3;
    }

    /** y[yo..] += a · x[xo..] over n elements. */
    public static void axpy(float a, float[] x, int xo, float[] y, int yo, int n) {
        FloatVector va = FloatVector.broadcast(F, a);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, x, xo + i).fma(va, FloatVector.fromArray(F, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) {
            y[yo + i] += a * x[xo + i];
        }
    }

    /** y[yo..] += x[xo..]. */
    public static void add(float[] x, int xo, float[] y, int yo, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, x, xo + i).add(FloatVector.fromArray(F, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) {
            y[yo + i] += x[xo + i];
        }
    }

    /** SwiGLU's middle: gate[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + e^-g). */
    public static void siluMul(float[] gate, float[] up, int n) {
        siluMul(gate, up, 0, n);
    }

    /**
     * {@link #siluMul(float[], float[], int)} over [off, off + n). Vectorised with {@link Exp} (about 1 ulp, as
     * torch's vectorised Sleef exp is; a scalar Math.exp per element cost ~30% of a prefill's expert time),
     * whose tail gives the bits of its vector body, so an element's result does not depend on where the range
     * was cut.
     */
    public static void siluMul(float[] gate, float[] up, int off, int n) {
        Exp.siluMul(gate, up, off, n);
    }

    /** The largest of x[off, off + n). */
    public static float max(float[] x, int off, int n) {
        FloatVector acc = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            acc = acc.max(FloatVector.fromArray(F, x, off + i));
        }
        // MAX is exact and commutative (Math.max semantics: NaN wins, +0 over -0), so the lane order reduceLanes
        // picks cannot change the result: unlike ADD it needs no fixed order.
        float m = acc.reduceLanes(VectorOperators.MAX);
        for (; i < n; i++) {
            m = Math.max(m, x[off + i]);
        }
        return m;
    }

    /** x[i] = e^(x[i] - max) over [off, off + n), vectorised (see {@link #siluMul}); returns their sum. */
    public static float expShifted(float[] x, int off, int n, float max) {
        return Exp.shiftedInPlace(x, off, n, max);
    }

    /**
     * x[off, off + n) *= 1 / sum, the softmax normalisation: a multiply by the reciprocal, as torch's CPU softmax over
     * the last dim normalises ({@code _vec_softmax_lastdim}: {@code tmp_sum = 1 / tmp_sum}, then {@code x * tmp_sum}),
     * not a division, which differs in the last bit for some x.
     */
    public static void normalise(float[] x, int off, int n, float sum) {
        float r = 1f / sum;
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector.fromArray(F, x, off + i).mul(r).intoArray(x, off + i);
        }
        for (; i < n; i++) {
            x[off + i] *= r;
        }
    }

    /**
     * In-place softmax over x[off, off + n), float32, max-subtracted and normalised by the reciprocal of the sum as
     * torch does ({@link #normalise}).
     */
    public static void softmax(float[] x, int off, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        float sum = 0f;
        for (int i = 0; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
        }
        normalise(x, off, n, sum);
    }

    public static float sigmoid(float x) {
        return 1.0f / (1.0f + (float) Math.exp(-x));
    }
}
