package io.moemesh.model.kernel;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code y = x · Wᵀ} for float32 weights {@code W[N, K]} (and f16 rows widened into a float32 block): the
 * same tiling as {@link Bf16Tiles} on activations in natural order. Each 4×4 tile step loads 4 activation and
 * 4 weight vectors for 16 FMAs, so it is bound by loads at about half the FMA peak; large batches of f32
 * weights go to OpenBLAS instead when it is available ({@link MatMul}).
 */
final class F32Tiles {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** A tile's 16 lane sums (LaneSum); fetched once per {@code rows} call, used only within one tile. */
    private static final ThreadLocal<float[]> SUMS = LaneSum.scratch();

    private F32Tiles() {
    }

    /** Output columns [n0, n1) of all m rows of x (from xOff); y row stride ldy. */
    static void rows(float[] x, int xOff, int m, int k, MemorySegment w, int n0, int n1, float[] y, int yOff,
                     int ldy) {
        int kv = k - k % L;
        int nb = MatMul.blockRows(k, 4);
        float[] s = SUMS.get();
        for (int b0 = n0; b0 < n1; b0 += nb) {
            int b1 = Math.min(n1, b0 + nb);
            int i = 0;
            for (; i + 4 <= m; i += 4) {
                int c = b0;
                for (; c + 4 <= b1; c += 4) {
                    tile4x4(x, xOff + i * k, k, kv, w, c, y, yOff + i * ldy + c, ldy, s);
                }
                for (; c < b1; c++) {
                    for (int r = 0; r < 4; r++) {
                        y[yOff + (i + r) * ldy + c] = dot(x, xOff + (i + r) * k, k, kv, w, c);
                    }
                }
            }
            for (; i < m; i++) {
                for (int c = b0; c < b1; c++) {
                    y[yOff + i * ldy + c] = dot(x, xOff + i * k, k, kv, w, c);
                }
            }
        }
    }

    private static void tile4x4(float[] x, int x0, int k, int kv, MemorySegment w, int c, float[] y, int yo,
                                int ldy, float[] s) {
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        long rowBytes = 4L * k;
        long r0 = c * rowBytes, r1 = r0 + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
        int x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        for (int p = 0; p < kv; p += L) {
            long b = 4L * p;
            FloatVector xa = FloatVector.fromArray(F, x, x0 + p);
            FloatVector xb = FloatVector.fromArray(F, x, x1 + p);
            FloatVector xc = FloatVector.fromArray(F, x, x2 + p);
            FloatVector xd = FloatVector.fromArray(F, x, x3 + p);
            FloatVector v = FloatVector.fromMemorySegment(F, w, r0 + b, LE);
            a00 = v.fma(xa, a00); a10 = v.fma(xb, a10); a20 = v.fma(xc, a20); a30 = v.fma(xd, a30);
            v = FloatVector.fromMemorySegment(F, w, r1 + b, LE);
            a01 = v.fma(xa, a01); a11 = v.fma(xb, a11); a21 = v.fma(xc, a21); a31 = v.fma(xd, a31);
            v = FloatVector.fromMemorySegment(F, w, r2 + b, LE);
            a02 = v.fma(xa, a02); a12 = v.fma(xb, a12); a22 = v.fma(xc, a22); a32 = v.fma(xd, a32);
            v = FloatVector.fromMemorySegment(F, w, r3 + b, LE);
            a03 = v.fma(xa, a03); a13 = v.fma(xb, a13); a23 = v.fma(xc, a23); a33 = v.fma(xd, a33);
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
            // Out of line: 16 calls of tail here made the method too big for C2 to inline them (26{'x': 'x'}lower).
            tails(x, x0, k, kv, w, c, y, yo - 3 * ldy, ldy);
        }
    }

    /** One activation row · one weight row: 4 independent FMA chains over a sequential weight stream. */
    private static float dot(float[] x, int x0, int k, int kv, MemorySegment w, int c) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        long r = 4L * c * k;
        int p = 0;
        for (; p + 4 * L <= kv; p += 4 * L) {
            a0 = FloatVector.fromMemorySegment(F, w, r + 4L * p, LE).fma(FloatVector.fromArray(F, x, x0 + p), a0);
            a1 = FloatVector.fromMemorySegment(F, w, r + 4L * (p + L), LE).fma(FloatVector.fromArray(F, x, x0 + p + L), a1);
            a2 = FloatVector.fromMemorySegment(F, w, r + 4L * (p + 2 * L), LE)
                    .fma(FloatVector.fromArray(F, x, x0 + p + 2 * L), a2);
            a3 = FloatVector.fromMemorySegment(F, w, r + 4L * (p + 3 * L), LE)
                    .fma(FloatVector.fromArray(F, x, x0 + p + 3 * L), a3);
        }
        for (; p < kv; p += L) {
            a0 = FloatVector.fromMemorySegment(F, w, r + 4L * p, LE).fma(FloatVector.fromArray(F, x, x0 + p), a0);
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
        return kv == k ? a.lane(0) : tail(a.lane(0), x, x0, w, (long) c * k, kv, k);
    }

    /** Adds the scalar tails k ∈ [kv, k) of a 4×4 tile's products onto their lane sums in y. */
    private static void tails(float[] x, int x0, int k, int kv, MemorySegment w, int c, float[] y, int yo, int ldy) {
        for (int r = 0; r < 4; r++) {
            for (int j = 0; j < 4; j++) {
                int o = yo + r * ldy + j;
                y[o] = tail(y[o], x, x0 + r * k, w, (long) (c + j) * k, kv, k);
            }
        }
    }

    /**
     * The lanes' sum s plus the scalar tail k ∈ [kv, k).
     */
    private static float tail(float s, float[] x, int x0, MemorySegment w, long e0, int kv, int k) {
        for (int p = kv; p < k; p++) {
            s += x[x0 + p] * w.get(Numerics.F32, 4 * (e0 + p));
        }
        return s;
    }
}
