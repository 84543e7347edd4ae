package io.moemesh.model.kernel;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code y = x · Wᵀ} for bf16 weights {@code W[N, K]}, float32 activations and accumulators.
 *
 * <p>Widening without shuffles: one int lane of a 64-byte load holds two bf16 weights, {@code w[2j]} in its
 * low half and {@code w[2j+1]} in its high half (little-endian). {@code lane << 16} is then exactly the float
 * {@code w[2j]} and {@code lane & 0xFFFF0000} exactly {@code w[2j+1]}: two ALU ops per 32 weights, where the
 * zero-extending convert ({@code vpmovzxwd}) costs a cross-lane shuffle per 16 (the trick llamafile's tinyBLAS
 * and ggml use for bf16). The activations are permuted once per call to match: within each block of
 * {@code 2·L} elements (L = float lanes) the even elements come first, then the odd ones ({@link #permute}).
 * The products and float32 sums are those of the plain dot product, only added in another order.
 *
 * <p>Tiles of 4 activation rows × 4 weight rows keep 16 accumulators, 4 weight and 4 activation registers
 * live (25 of AVX-512's 32); one weight load feeds 8 FMAs. A single activation row (decode) walks the weight
 * rows one after another instead, so the weights stream from memory in one sequential pass.
 */
final class Bf16Tiles {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    static final int L = F.length();
    /** Elements per even/odd block: one int vector of bf16 pairs. */
    static final int BLOCK = 2 * L;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** A tile's 16 lane sums (LaneSum); fetched once per {@code rows} call, used only within one tile. */
    private static final ThreadLocal<float[]> SUMS = LaneSum.scratch();
    private static final IntVector HIGH = IntVector.broadcast(I, 0xFFFF0000);
    private static final VectorShuffle<Float> EVEN = VectorShuffle.fromOp(F, i -> 2 * i);
    private static final VectorShuffle<Float> ODD = VectorShuffle.fromOp(F, i -> 2 * i + 1);

    private Bf16Tiles() {
    }

    /** xp = x with each full block of {@link #BLOCK} elements of every row split into [evens, odds]. */
    static void permute(float[] x, int xOff, int m, int k, float[] xp) {
        int kv = k - k % BLOCK;
        for (int i = 0; i < m; i++) {
            int src = xOff + i * k;
            int dst = i * k;
            for (int p = 0; p < kv; p += BLOCK) {
                FloatVector a = FloatVector.fromArray(F, x, src + p);
                FloatVector b = FloatVector.fromArray(F, x, src + p + L);
                a.rearrange(EVEN, b).intoArray(xp, dst + p);
                a.rearrange(ODD, b).intoArray(xp, dst + p + L);
            }
            System.arraycopy(x, src + kv, xp, dst + kv, k - kv);
        }
    }

    private static FloatVector even(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector odd(IntVector v) {
        return v.and(HIGH).reinterpretAsFloats();
    }

    /** even(v) for (-1, 16), odd(v) for (0xFFFF0000, 0). */
    private static FloatVector half(IntVector v, int mask, int shift) {
        return v.and(mask).lanewise(VectorOperators.LSHL, shift).reinterpretAsFloats();
    }

    /** Output columns [n0, n1) of all m rows from permuted activations xp; y row stride ldy. */
    static void rows(float[] xp, int m, int k, MemorySegment w, int n0, int n1, float[] y, int yOff, int ldy) {
        int kv = k - k % BLOCK;
        int nb = MatMul.blockRows(k, 2);
        float[] s = SUMS.get();
        for (int b0 = n0; b0 < n1; b0 += nb) {
            int b1 = Math.min(n1, b0 + nb);
            int i = 0;
            for (; i + 4 <= m; i += 4) {
                int c = b0;
                for (; c + 4 <= b1; c += 4) {
                    tile4x4(xp, i * k, k, kv, w, c, y, yOff + i * ldy + c, ldy, s);
                }
                for (; c < b1; c++) {
                    for (int r = 0; r < 4; r++) {
                        y[yOff + (i + r) * ldy + c] = dot(xp, (i + r) * k, k, kv, w, c);
                    }
                }
            }
            if (m - i == 1) {
                for (int c = b0; c < b1; c++) {
                    y[yOff + i * ldy + c] = dot(xp, i * k, k, kv, w, c);
                }
            } else if (m - i > 1) {
                // 2 or 3 rows left (decode batches spread over experts): one pass over each weight row for all.
                int last = m - 1;
                for (int c = b0; c < b1; c++) {
                    tile3x1(xp, i * k, Math.min(i + 2, last) * k, k, kv, w, c, y, yOff + i * ldy + c, ldy, m - i);
                }
            }
        }
    }

    /**
     * Activation rows x0, x0 + k and x2 (x2 repeats the second row when only two are left) × weight row c:
     * one weight load feeds all rows.
     */
    private static void tile3x1(float[] xp, int x0, int x2, int k, int kv, MemorySegment w, int c, float[] y, int yo,
                                int ldy, int rows) {
        FloatVector a0 = FloatVector.zero(F), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0;
        long r = 2L * c * k;
        int x1 = x0 + k;
        for (int p = 0; p < kv; p += BLOCK) {
            IntVector v = IntVector.fromMemorySegment(I, w, r + 2L * p, LE);
            FloatVector e = even(v);
            FloatVector o = odd(v);
            a0 = e.fma(FloatVector.fromArray(F, xp, x0 + p), a0);
            b0 = o.fma(FloatVector.fromArray(F, xp, x0 + p + L), b0);
            a1 = e.fma(FloatVector.fromArray(F, xp, x1 + p), a1);
            b1 = o.fma(FloatVector.fromArray(F, xp, x1 + p + L), b1);
            a2 = e.fma(FloatVector.fromArray(F, xp, x2 + p), a2);
            b2 = o.fma(FloatVector.fromArray(F, xp, x2 + p + L), b2);
        }
        long e0 = (long) c * k;
        // The rows' lanes in LaneSum's order, folded together as VectorOps.dot4 does (the third row twice): two
        // butterfly levels, then the tree's last levels in one vector; row r's sum in lane r · L/4.
        a0 = a0.add(b0);
        a1 = a1.add(b1);
        a2 = a2.add(b2);
        FloatVector c0 = LaneSum.LO_1.selectFrom(a0, a1).add(LaneSum.HI_1.selectFrom(a0, a1));
        FloatVector c1 = LaneSum.LO_1.selectFrom(a2, a2).add(LaneSum.HI_1.selectFrom(a2, a2));
        FloatVector f = LaneSum.LO_2.selectFrom(c0, c1).add(LaneSum.HI_2.selectFrom(c0, c1));
        int q = L / 4;
        if (q == 4) {
            f = f.add(f.rearrange(LaneSum.HALVE_2));
        }
        if (q >= 2) {
            f = f.add(f.rearrange(LaneSum.HALVE_1));
        }
        y[yo] = kv == k ? f.lane(0) : tail(f.lane(0), xp, x0, w, e0, kv, k);
        y[yo + ldy] = kv == k ? f.lane(q) : tail(f.lane(q), xp, x1, w, e0, kv, k);
        if (rows == 3) {
            y[yo + 2 * ldy] = kv == k ? f.lane(2 * q) : tail(f.lane(2 * q), xp, x2, w, e0, kv, k);
        }
    }

    private static void tile4x4(float[] xp, int x0, int k, int kv, MemorySegment w, int c, float[] y, int yo,
                                int ldy, float[] s) {
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        long rowBytes = 2L * k;
        long r0 = c * rowBytes, r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
        int x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        for (int p = 0; p < kv; p += BLOCK) {
            long b = 2L * p;
            // Evens then odds; the weight vectors are loaded again for the odds (an L1 hit): holding all four
            // across both halves made the method too big for C2 to keep the vectors unboxed. The half is picked
            // with scalars (mask, shift), not by choosing between two vectors, which C2 would box at the merge.
            for (int h = 0; h < 2; h++) {
                int xo = p + h * L;
                int mask = h == 0 ? -1 : 0xFFFF0000;
                int shift = h == 0 ? 16 : 0;
                FloatVector xa = FloatVector.fromArray(F, xp, x0 + xo);
                FloatVector xb = FloatVector.fromArray(F, xp, x1 + xo);
                FloatVector xc = FloatVector.fromArray(F, xp, x2 + xo);
                FloatVector xd = FloatVector.fromArray(F, xp, x3 + xo);
                FloatVector v = half(IntVector.fromMemorySegment(I, w, r0 + b, LE), mask, shift);
                a00 = v.fma(xa, a00); a10 = v.fma(xb, a10); a20 = v.fma(xc, a20); a30 = v.fma(xd, a30);
                v = half(IntVector.fromMemorySegment(I, w, r1 + b, LE), mask, shift);
                a01 = v.fma(xa, a01); a11 = v.fma(xb, a11); a21 = v.fma(xc, a21); a31 = v.fma(xd, a31);
                v = half(IntVector.fromMemorySegment(I, w, r2 + b, LE), mask, shift);
                a02 = v.fma(xa, a02); a12 = v.fma(xb, a12); a22 = v.fma(xc, a22); a32 = v.fma(xd, a32);
                v = half(IntVector.fromMemorySegment(I, w, r3 + b, LE), mask, shift);
                a03 = v.fma(xa, a03); a13 = v.fma(xb, a13); a23 = v.fma(xc, a23); a33 = v.fma(xd, a33);
            }
        }
        // The 16 lane sums in LaneSum's order (C2's halving tree), folded together: output (r, c) at s[4r + c].
        FloatVector c0 = LaneSum.LO_1.selectFrom(a00, a01).add(LaneSum.HI_1.selectFrom(a00, a01));
        FloatVector c1 = LaneSum.LO_1.selectFrom(a02, a03).add(LaneSum.HI_1.selectFrom(a02, a03));
        FloatVector c2 = LaneSum.LO_1.selectFrom(a10, a11).add(LaneSum.HI_1.selectFrom(a10, a11));
        FloatVector c3 = LaneSum.LO_1.selectFrom(a12, a13).add(LaneSum.HI_1.selectFrom(a12, a13));
        FloatVector c4 = LaneSum.LO_1.selectFrom(a20, a21).add(LaneSum.HI_1.selectFrom(a20, a21));
        FloatVector c5 = LaneSum.LO_1.selectFrom(a22, a23).add(LaneSum.HI_1.selectFrom(a22, a23));
        FloatVector c6 = LaneSum.LO_1.selectFrom(a30, a31).add(LaneSum.HI_1.selectFrom(a30, a31));
        FloatVector c7 = LaneSum.LO_1.selectFrom(a32, a33).add(LaneSum.HI_1.selectFrom(a32, a33));
        FloatVector fe0 = LaneSum.LO_2.selectFrom(c0, c1).add(LaneSum.HI_2.selectFrom(c0, c1));
        FloatVector fe1 = LaneSum.LO_2.selectFrom(c2, c3).add(LaneSum.HI_2.selectFrom(c2, c3));
        FloatVector fe2 = LaneSum.LO_2.selectFrom(c4, c5).add(LaneSum.HI_2.selectFrom(c4, c5));
        FloatVector fe3 = LaneSum.LO_2.selectFrom(c6, c7).add(LaneSum.HI_2.selectFrom(c6, c7));
        if (L == 4) {
            fe0.intoArray(s, 0);
            fe1.intoArray(s, 4);
            fe2.intoArray(s, 8);
            fe3.intoArray(s, 12);
        } else {
            FloatVector g0 = LaneSum.LO_3.selectFrom(fe0, fe1).add(LaneSum.HI_3.selectFrom(fe0, fe1));
            FloatVector g1 = LaneSum.LO_3.selectFrom(fe2, fe3).add(LaneSum.HI_3.selectFrom(fe2, fe3));
            if (L == 8) {
                g0.intoArray(s, 0);
                g1.intoArray(s, 8);
            } else {
                LaneSum.LO_4.selectFrom(g0, g1).add(LaneSum.HI_4.selectFrom(g0, g1)).intoArray(s, 0);
            }
        }
        y[yo] = s[0]; y[yo + 1] = s[1]; y[yo + 2] = s[2]; y[yo + 3] = s[3];
        yo += ldy;
        y[yo] = s[4]; y[yo + 1] = s[5]; y[yo + 2] = s[6]; y[yo + 3] = s[7];
        yo += ldy;
        y[yo] = s[8]; y[yo + 1] = s[9]; y[yo + 2] = s[10]; y[yo + 3] = s[11];
        yo += ldy;
        y[yo] = s[12]; y[yo + 1] = s[13]; y[yo + 2] = s[14]; y[yo + 3] = s[15];
        if (kv < k) {
            // Out of line: 16 calls of tail here made the method too big for C2 to inline them (26{'x': 'xp'}lower).
            tails(xp, x0, k, kv, w, c, y, yo - 3 * ldy, ldy);
        }
    }

    /** One activation row · one weight row, two blocks per iteration for 4 independent FMA chains. */
    private static float dot(float[] xp, int x0, int k, int kv, MemorySegment w, int c) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        long r = 2L * c * k;
        int p = 0;
        for (; p + 2 * BLOCK <= kv; p += 2 * BLOCK) {
            IntVector v0 = IntVector.fromMemorySegment(I, w, r + 2L * p, LE);
            IntVector v1 = IntVector.fromMemorySegment(I, w, r + 2L * p + 4L * L, LE);
            a0 = even(v0).fma(FloatVector.fromArray(F, xp, x0 + p), a0);
            a1 = odd(v0).fma(FloatVector.fromArray(F, xp, x0 + p + L), a1);
            a2 = even(v1).fma(FloatVector.fromArray(F, xp, x0 + p + 2 * L), a2);
            a3 = odd(v1).fma(FloatVector.fromArray(F, xp, x0 + p + 3 * L), a3);
        }
        for (; p < kv; p += BLOCK) {
            IntVector v0 = IntVector.fromMemorySegment(I, w, r + 2L * p, LE);
            a0 = even(v0).fma(FloatVector.fromArray(F, xp, x0 + p), a0);
            a1 = odd(v0).fma(FloatVector.fromArray(F, xp, x0 + p + L), a1);
        }
        FloatVector a = a0.add(a1).add(a2.add(a3));
        // LaneSum's order (C2's halving tree), in-line: a vector handed to a call C2 does not inline is boxed.
        if (L == 16) {
            a = a.add(a.rearrange(LaneSum.HALVE_8));
        }
        if (L >= 8) {
            a = a.add(a.rearrange(LaneSum.HALVE_4));
        }
        a = a.add(a.rearrange(LaneSum.HALVE_2));
        a = a.add(a.rearrange(LaneSum.HALVE_1));
        return kv == k ? a.lane(0) : tail(a.lane(0), xp, x0, w, (long) c * k, kv, k);
    }

    /** Adds the scalar tails k ∈ [kv, k) of a 4×4 tile's products onto their lane sums in y. */
    private static void tails(float[] xp, int x0, int k, int kv, MemorySegment w, int c, float[] y, int yo, int ldy) {
        for (int r = 0; r < 4; r++) {
            for (int j = 0; j < 4; j++) {
                int o = yo + r * ldy + j;
                y[o] = tail(y[o], xp, x0 + r * k, w, (long) (c + j) * k, kv, k);
            }
        }
    }

    /**
     * The lanes' sum s plus the scalar tail k ∈ [kv, k), which {@link #permute} left in natural order. A
     * float, not the vector, crosses the call: a vector argument of a call C2 does not inline is boxed.
     */
    private static float tail(float s, float[] xp, int x0, MemorySegment w, long e0, int kv, int k) {
        for (int p = kv; p < k; p++) {
            s += xp[x0 + p] * Numerics.bf16ToFloat(w.get(Numerics.I16, 2 * (e0 + p)));
        }
        return s;
    }
}
