package io.moemesh.model.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The order in which the kernels add a float vector's lanes, fixed by our code so that a sum has the same bits in
 * the interpreter, C1 and C2. {@code FloatVector.reduceLanes(ADD)} leaves the order of floating-point adds
 * unspecified and does not keep one: the interpreter and C1 run the Java fallback, which adds lane by lane, C2 a
 * tree of shuffles. So a product computed before its kernel was compiled could differ in the last bit from the same
 * product afterwards, and a service had to finish {@link MatMul#warmUp} before serving.
 *
 * <p><b>The order: a halving tree</b>, the one C2 itself emits for {@code reduceLanes(ADD)} on x86 (JDK 25's
 * {@code C2_MacroAssembler::unorderedReduceF}: add the upper half onto the lower, then the upper quarter, …). For
 * lanes {@code l0 .. l(L-1)}: {@code v_t = l_t + l_(t+L/2)} for t &lt; L/2, then {@code v_t + v_(t+L/4)}, and so
 * on to one lane. So the compiled kernels keep the bits they had with {@code reduceLanes} (checked on all of
 * TierProbe's outputs, docs/performance.md "Cold start"), and the interpreter and C1 now give them too
 * (JitTierBitsTest). Every step is a lane-wise IEEE add or a data movement ({@code selectFrom}, {@code rearrange},
 * {@code lane}, {@code intoArray}), each exact and the same in every tier (JLS 15.18.2; the Vector API specifies a
 * lane-wise operation as the scalar one per lane).
 *
 * <p><b>One accumulator</b> ({@link VectorOps}, {@link Exp}, the one-row dot products): {@code a + a.rearrange(i
 * xor d)} for d = L/2, …, 1, then lane 0 ({@link #HALVE_8} … {@link #HALVE_1}).
 *
 * <p><b>A tile's 16 accumulators</b> ({@link F32Tiles}, {@link Bf16Tiles}) are folded together, a butterfly in
 * which each level adds two vectors' halves at once: {@code LO_S.selectFrom(a, b) + HI_S.selectFrom(a, b)} takes
 * two vectors whose lanes are groups of S consecutive partial sums per output and returns one with groups of S/2:
 * the first half of each group plus its second half, a's groups first. Level S = L turns 16 accumulators into 8
 * vectors of two outputs each, S = L/2 into 4 of four, and so on; with L = 16 four levels leave one vector holding
 * the 16 sums in the tile's order (output (r, c) in lane 4r + c), stored once: 30 two-vector selects, 15 adds and
 * one store against 16 reductions of 8 instructions each (measured +2–7% in a microbenchmark of 16 × 64 dot
 * products, docs/performance.md). With L = 8 three levels leave two vectors, with L = 4 two levels leave four.
 *
 * <p>Both are written out in-line in the kernels: no vector crosses a call C2 might not inline, since such an
 * argument is boxed (a helper taking the vector, tried first, allocated ~0.5 MB per decode step once C2 declined
 * to inline it in the large tile methods). L is the preferred species' lane count: 4, 8 or 16 (checked at class
 * initialisation; wider vectors would need a fifth level).
 */
final class LaneSum {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();

    /** Lane i ← lane i xor 8, xor 4, xor 2, xor 1 (the tree's levels; HALVE_8 only for L = 16). */
    static final VectorShuffle<Float> HALVE_8 = VectorShuffle.fromOp(F, i -> i ^ Math.min(8, L / 2));
    static final VectorShuffle<Float> HALVE_4 = VectorShuffle.fromOp(F, i -> i ^ Math.min(4, L / 2));
    static final VectorShuffle<Float> HALVE_2 = VectorShuffle.fromOp(F, i -> i ^ 2);
    static final VectorShuffle<Float> HALVE_1 = VectorShuffle.fromOp(F, i -> i ^ 1);

    /** The butterfly's select indices for group sizes L, L/2, L/4, L/8 (the last two only when L allows). */
    static final FloatVector LO_1, HI_1, LO_2, HI_2, LO_3, HI_3, LO_4, HI_4;

    static {
        if (L != 4 && L != 8 && L != 16) {
            throw new ExceptionInInitializerError("the kernels' lane sums need 4, 8 or 16 float lanes, this JVM"
                    + " prefers " + L + " (FloatVector.SPECIES_PREFERRED)");
        }
        LO_1 = select(L, false);
        HI_1 = select(L, true);
        LO_2 = select(L / 2, false);
        HI_2 = select(L / 2, true);
        LO_3 = select(Math.max(2, L / 4), false);
        HI_3 = select(Math.max(2, L / 4), true);
        LO_4 = select(Math.max(2, L / 8), false);
        HI_4 = select(Math.max(2, L / 8), true);
    }

    private LaneSum() {
    }

    /**
     * Index vector for {@code selectFrom(a, b)} (an index ≥ L selects lane index − L of b): a and b each hold L/S
     * groups of S lanes; lane i of the result is in output group i / (S/2) (a's groups first, then b's) and takes
     * the first (or, for {@code high}, the second) half of its source group.
     */
    static FloatVector select(int s, boolean high) {
        float[] idx = new float[L];
        int half = s / 2;
        int groups = L / s;
        for (int i = 0; i < L; i++) {
            int g = i / half;
            int source = g < groups ? 0 : L;
            idx[i] = source + (g % groups) * s + (high ? half : 0) + i % half;
        }
        return FloatVector.fromArray(F, idx, 0);
    }

    /**
     * One accumulator's lanes in the tree's order: {@code a + a.rearrange(i xor d)} for d = L/2, …, 1, then lane 0.
     * Only for the small vector kernels ({@link VectorOps}, {@link Exp}), into which C2 inlines it; the tiles write
     * it out in-line, since a vector argument of a call C2 does not inline is boxed.
     */
    static float sum(FloatVector a) {
        if (L == 16) {
            a = a.add(a.rearrange(HALVE_8));
        }
        if (L >= 8) {
            a = a.add(a.rearrange(HALVE_4));
        }
        a = a.add(a.rearrange(HALVE_2));
        return a.add(a.rearrange(HALVE_1)).lane(0);
    }

    /** Scratch for a tile's 16 sums, one per thread and kernel class. */
    static ThreadLocal<float[]> scratch() {
        return ThreadLocal.withInitial(() -> new float[16]);
    }
}
