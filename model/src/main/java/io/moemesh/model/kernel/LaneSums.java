package io.moemesh.model.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The sum of a vector's lanes in one fixed pairwise order, the same bits in the interpreter, C1 and C2.
 *
 * <p>{@code reduceLanes(ADD)} leaves the order to the implementation (its javadoc: "the result may vary with the
 * order of operations"), and it does vary: C2's intrinsic adds in a tree, the Java fallback the interpreter and C1
 * run adds lane by lane, so the same product differed in the last bit before and after compilation. A service
 * then had to compile its kernels (seconds of C2 work, {@link MatMul#warmUp}) before it could serve bit-stable
 * results, and cold start waited for it (issue 12). Here every step is a lane-wise add of the vector and a fixed
 * permutation of it (lane i with lane i xor h, h = n/2 … 1), exact IEEE additions in an order the code fixes, so
 * every tier computes the same tree: lane 0 ends as ((v0 + v8) + (v4 + v12)) + … for 16 lanes. C2 compiles the
 * permutations to single shuffles (vpermps), as many as its own reduction uses.
 */
final class LaneSums {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int N = F.length();
    private static final VectorShuffle<Float> XOR8 = xor(8);
    private static final VectorShuffle<Float> XOR4 = xor(4);
    private static final VectorShuffle<Float> XOR2 = xor(2);
    private static final VectorShuffle<Float> XOR1 = xor(1);

    static {
        if (N > 16 || Integer.bitCount(N) != 1) {
            throw new ExceptionInInitializerError("float vectors of " + N + " lanes are not supported (1-16, power of 2)");
        }
    }

    private LaneSums() {
    }

    /** Σ lanes of {@code v} ({@link FloatVector#SPECIES_PREFERRED}), pairwise, halves first. */
    static float of(FloatVector v) {
        // N is a constant: C2 folds the branches away
        if (N >= 16) {
            v = v.add(v.rearrange(XOR8));
        }
        if (N >= 8) {
            v = v.add(v.rearrange(XOR4));
        }
        if (N >= 4) {
            v = v.add(v.rearrange(XOR2));
        }
        if (N >= 2) {
            v = v.add(v.rearrange(XOR1));
        }
        return v.lane(0);
    }

    /** Lane i takes lane i xor h; the identity where the vector is too short for h (never used then). */
    private static VectorShuffle<Float> xor(int h) {
        return VectorShuffle.fromOp(F, i -> h < N ? i ^ h : i);
    }
}
