package io.moemesh.model.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The orders in which the kernels add a float vector's lanes, fixed by our code so that a sum has the same bits in
 * the interpreter, C1 and C2. {@code FloatVector.reduceLanes(ADD)} leaves the order of floating-point adds
 * unspecified and does not keep one: the interpreter and C1 run the Java fallback, which adds lane by lane, C2 an
 * unordered tree of shuffles. So a product computed before its kernel was compiled could differ in the last bit
 * from the same product afterwards, and a service had to finish {@link MatMul#warmUp} before serving.
 *
 * <p>Every step below is a lane-wise IEEE add, a data movement ({@code selectFrom}, {@code rearrange}, {@code
 * lane}, {@code intoArray}) or a scalar float add, each exact and the same in every tier (JLS 15.18.2; the Vector
 * API specifies a lane-wise operation as the scalar one per lane). L is the preferred species' lane count, a power
 * of two, at least 4 (checked at class initialisation).
 *
 * <p><b>Tile order</b> (the matmul kernels, {@link F32Tiles} and {@link Bf16Tiles}): a halving tree. For an
 * accumulator's lanes {@code l0 .. l(L-1)}: {@code v_t = l_t + l_(t+L/2)} for t &lt; L/2, then {@code v_t +
 * v_(t+L/4)} for t &lt; L/4, and so on to one lane; with Q = L/4, after two levels {@code p_t = (l_t + l_(t+2Q)) +
 * (l_(t+Q) + l_(t+3Q))}, and {@link #quarter} finishes on the p_t. The first two levels run in registers. The tiles
 * fold pairs of accumulators at once: {@code HALF_LO.selectFrom(a, b) + HALF_HI.selectFrom(a, b)} holds a's v_t in
 * its low half and b's in its high half, and the quarter indices fold two such vectors into one holding four
 * outputs' Q lanes each, in order. A 4×4 tile so needs 24 two-vector selects, 12 adds and 4 stores for its 16 sums
 * plus 16 scalar {@link #quarter}s, against 16 C2 tree reductions before (docs/performance.md, "Fixed-order lane
 * sums"). Tried first: a scalar sum of all L lanes per output from the scratch (f32 tiles ~25% slower), and
 * mask blends with one-vector rearranges in place of the two-vector selects (C2 boxed vectors somewhere in the
 * tile methods: ~50 KB allocated per decode step). The one-row {@code dot} folds its single accumulator with
 * {@link #SWAP_HALVES} and {@link #SWAP_QUARTERS} and takes the Q lanes with {@code lane(j)} in {@link #quarter}'s
 * order: the same adds, a few % faster than pairing it with itself through the selects and the scratch.
 *
 * <p><b>Vector order</b> ({@link VectorOps}, {@link Exp}, one accumulator): four running sums {@code s_j = l_j +
 * l_(j+4) + l_(j+8) + …} left to right, then {@code (s0 + s1) + (s2 + s3)}, written in-line with {@code lane(j)}.
 *
 * <p>Both are written out in-line in the kernels: no vector crosses a call C2 might not inline, since such an
 * argument is boxed (a helper taking the vector, tried first, allocated ~0.5 MB per decode step once C2 declined
 * to inline it in the large tile methods). Only float arrays and scalars reach the methods here.
 */
final class LaneSum {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    /** Lanes per output left after the two in-register folds. */
    static final int Q = L / 4;
    /** {@code HALF_LO.selectFrom(a, b)} = [a's low half | b's low half] (indices ≥ L select from b). */
    static final FloatVector HALF_LO;
    /** {@code HALF_HI.selectFrom(a, b)} = [a's high half | b's high half]. */
    static final FloatVector HALF_HI;
    /**
     * For c, d each holding two outputs' lanes in its halves: {@code QUARTER_LO.selectFrom(c, d)} = the first
     * quarter of each of the four halves [c's low, c's high, d's low, d's high], {@code QUARTER_HI} the second.
     */
    static final FloatVector QUARTER_LO;
    static final FloatVector QUARTER_HI;
    /** Lane i ← lane i xor L/2: {@code a + a.rearrange(SWAP_HALVES)} holds v_t in lane t (one accumulator). */
    static final VectorShuffle<Float> SWAP_HALVES = VectorShuffle.fromOp(F, i -> i ^ (L / 2));
    /** Lane i ← lane i xor L/4: the second fold of one accumulator, p_t in lane t &lt; Q. */
    static final VectorShuffle<Float> SWAP_QUARTERS = VectorShuffle.fromOp(F, i -> i ^ Math.max(1, L / 4));

    static {
        if (L < 4) {
            throw new ExceptionInInitializerError("the kernels need at least 4 float lanes (128-bit vectors), this JVM"
                    + " prefers " + L);
        }
        float[] hl = new float[L];
        float[] hh = new float[L];
        float[] ql = new float[L];
        float[] qh = new float[L];
        for (int i = 0; i < L; i++) {
            int g = i / (L / 2);
            hl[i] = g * L + i % (L / 2);
            hh[i] = hl[i] + L / 2;
            ql[i] = g * L + (i / Q) % 2 * (L / 2) + i % Q;
            qh[i] = ql[i] + Q;
        }
        HALF_LO = FloatVector.fromArray(F, hl, 0);
        HALF_HI = FloatVector.fromArray(F, hh, 0);
        QUARTER_LO = FloatVector.fromArray(F, ql, 0);
        QUARTER_HI = FloatVector.fromArray(F, qh, 0);
    }

    private LaneSum() {
    }

    /**
     * The tile order's last levels on the Q partial sums {@code s[off, off + Q)}: {@code (p0 + p2) + (p1 + p3)} for
     * 512-bit vectors, the same halving for the others (beyond Q = 4 in place: it overwrites those Q floats).
     */
    static float quarter(float[] s, int off) {
        return switch (Q) {
            case 1 -> s[off];
            case 2 -> s[off] + s[off + 1];
            case 4 -> (s[off] + s[off + 2]) + (s[off + 1] + s[off + 3]);
            default -> { // vectors wider than 512 bits (not on x86): halving in place, in the scratch
                for (int d = Q / 2; d > 0; d /= 2) {
                    for (int j = 0; j < d; j++) {
                        s[off + j] += s[off + j + d];
                    }
                }
                yield s[off];
            }
        };
    }

    /** Scratch for {@code vectors} vectors of the preferred species, one per thread and kernel class. */
    static ThreadLocal<float[]> scratch(int vectors) {
        return ThreadLocal.withInitial(() -> new float[vectors * L]);
    }
}
