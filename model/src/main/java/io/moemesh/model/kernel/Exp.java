package io.moemesh.model.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code e^x} in float32 from adds, multiplies and fused multiply-adds only, and the two vector kernels built on
 * it (SiLU·up, softmax exponentials), whose vector bodies perform the scalar {@link #of(float)}'s operations in
 * the same order: every element gets the same bits, in a vector body or a tail, in every JIT tier.
 *
 * <p>The Vector API's {@code EXP} cannot promise that: C2 calls an SVML routine, the interpreter and C1 call
 * {@code Math.exp} per lane, and a scalar tail loop has to use one or the other. The last bit of a SiLU or a
 * softmax weight then depended on whether an element fell into a vector body or a tail, which depends on how
 * a range was cut across threads. Method: Cephes {@code expf} (S. L. Moshier, Cephes Math Library, expf.c):
 * {@code x = n·ln2 + r} with |r| ≤ ln2/2 (ln2 split in two parts so {@code n·ln2_hi} is exact), a degree-6
 * polynomial for {@code e^r} (relative error about 1 ulp), and {@code 2^n} built in the exponent bits. Inputs
 * are clamped to [-87.3, 88.3] so {@code 2^n} stays a normal float: below, the result is about 1e-38 instead of
 * a denormal or 0, which no caller can tell apart (a softmax weight, SiLU's {@code 1 + e^-x}); above, the true
 * result would overflow anyway.
 */
final class Exp {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final float LOG2E = 1.44269504088896341f;
    /** 1.5·2^23: adding it rounds a float of magnitude below 2^22 to the nearest integer. */
    private static final float ROUND = 12582912f;
    /**
     * t = x·log2(e) + 1.5·2^23 holds n in its low mantissa bits: bits(t) = 0x4B400000 + n. Adding this and
     * shifting by 23 leaves (n + 127) in the exponent field, i.e. the float 2^n, without a float→int conversion.
     */
    private static final int EXPONENT_BIAS = 127 - 0x4B400000;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    private static final float LO = -87.3f;
    private static final float HI = 88.3f;
    private static final float P0 = 1.9875691500e-4f;
    private static final float P1 = 1.3981999507e-3f;
    private static final float P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f;
    private static final float P4 = 1.6666665459e-1f;
    private static final float P5 = 5.0000001201e-1f;
    private static final FloatVector NEG_LN2_HI = FloatVector.broadcast(F, -LN2_HI);
    private static final FloatVector NEG_LN2_LO = FloatVector.broadcast(F, -LN2_LO);
    private static final FloatVector VP2 = FloatVector.broadcast(F, P2);
    private static final FloatVector VP3 = FloatVector.broadcast(F, P3);
    private static final FloatVector VP4 = FloatVector.broadcast(F, P4);
    private static final FloatVector VP5 = FloatVector.broadcast(F, P5);

    private Exp() {
    }

    /**
     * {@code gate[i] = silu(gate[i]) · up[i]} over [off, off + n), SiLU as torch writes it, {@code g / (1 + e^-g)}.
     * The polynomial is written out in both loops here rather than called: a helper taking and returning
     * vectors that C2 declines to inline (it is past the inlining size limits) boxes every vector it touches.
     */
    static void siluMul(float[] gate, float[] up, int off, int n) {
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector g = FloatVector.fromArray(F, gate, off + i);
            FloatVector x = g.neg().max(LO).min(HI);
            FloatVector t = x.fma(LOG2E, ROUND);
            FloatVector k = t.sub(ROUND);
            FloatVector r = k.fma(NEG_LN2_HI, x);
            r = k.fma(NEG_LN2_LO, r);
            FloatVector p = r.fma(P0, P1).fma(r, VP2).fma(r, VP3).fma(r, VP4).fma(r, VP5);
            p = p.fma(r.mul(r), r.add(1f));
            FloatVector e = p.mul(t.reinterpretAsInts().add(EXPONENT_BIAS).lanewise(VectorOperators.LSHL, 23)
                    .reinterpretAsFloats());
            g.div(e.add(1f)).mul(FloatVector.fromArray(F, up, off + i)).intoArray(gate, off + i);
        }
        for (; i < n; i++) {
            float g = gate[off + i];
            gate[off + i] = (g / (of(-g) + 1f)) * up[off + i];
        }
    }

    /**
     * {@code x[i] = e^(x[i] - max)} over [off, off + n); returns their sum (the lanes in {@link LaneSum}'s vector
     * order, then the tail).
     */
    static float shiftedInPlace(float[] v, int off, int n, float max) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0;
        for (int bound = F.loopBound(n); i < bound; i += F.length()) {
            FloatVector x = FloatVector.fromArray(F, v, off + i).sub(max).max(LO).min(HI);
            FloatVector t = x.fma(LOG2E, ROUND);
            FloatVector k = t.sub(ROUND);
            FloatVector r = k.fma(NEG_LN2_HI, x);
            r = k.fma(NEG_LN2_LO, r);
            FloatVector p = r.fma(P0, P1).fma(r, VP2).fma(r, VP3).fma(r, VP4).fma(r, VP5);
            p = p.fma(r.mul(r), r.add(1f));
            FloatVector e = p.mul(t.reinterpretAsInts().add(EXPONENT_BIAS).lanewise(VectorOperators.LSHL, 23)
                    .reinterpretAsFloats());
            e.intoArray(v, off + i);
            acc = acc.add(e);
        }
        // LaneSum's order, not reduceLanes(ADD), whose order depends on the JIT tier.
        float sum = LaneSum.sum(acc);
        for (; i < n; i++) {
            float e = of(v[off + i] - max);
            v[off + i] = e;
            sum += e;
        }
        return sum;
    }

    static float of(float x) {
        x = Math.min(Math.max(x, LO), HI);
        float t = Math.fma(x, LOG2E, ROUND);
        float n = t - ROUND;
        float r = Math.fma(n, -LN2_HI, x);
        r = Math.fma(n, -LN2_LO, r);
        float p = Math.fma(r, P0, P1);
        p = Math.fma(p, r, P2);
        p = Math.fma(p, r, P3);
        p = Math.fma(p, r, P4);
        p = Math.fma(p, r, P5);
        float r2 = r * r;
        p = Math.fma(p, r2, r + 1f);
        return p * Float.intBitsToFloat((Float.floatToRawIntBits(t) + EXPONENT_BIAS) << 23);
    }
}
