package io.moemesh.model.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

/**
 * The split-K merge is exact: attention over positions [0, n) equals the merge of the partial over [0, s) (as a
 * {@link RemoteAttention} returns it) and the engine's own partial over [s, n) from a cache whose table starts at
 * s, for any split point s, head layout and scale of scores; and {@link Attention#merge} is the formula of
 * {@code kvcache.v1}'s AttendRequest comment, computed here independently in double precision.
 */
class AttentionMergePropertyTest {

    @Property(tries = 200)
    void anySplitPoint_mergedPartials_equalTheWholeAttention(@ForAll @IntRange(min = 2, max = 40) int n,
                                                            @ForAll @IntRange(min = 1, max = 39) int split,
                                                            @ForAll @IntRange(min = 1, max = 4) int kvHeads,
                                                            @ForAll @IntRange(min = 1, max = 4) int group,
                                                            @ForAll @IntRange(min = 1, max = 3) int dimEighths,
                                                            @ForAll @IntRange(min = 1, max = 8) int magnitude,
                                                            @ForAll long seed) {
        int s = Math.min(split, n - 1);
        int heads = kvHeads * group;
        int d = 8 * dimEighths;
        int kvDim = kvHeads * d;
        SplittableRandom r = new SplittableRandom(seed);
        float[] q = random(r, heads * d, magnitude);
        float[] k = random(r, n * kvDim, magnitude);
        float[] v = random(r, n * kvDim, 1);
        float scale = (float) (1.0 / Math.sqrt(d));

        // The engine's partial over [s, n): a cache of one-position blocks whose table starts at position s.
        PagedKvCache cache = new PagedKvCache(1, kvDim, 1, n);
        cache.ensureCapacity(1, n - s);
        int[] table = cache.blockTable(1);
        Attention attention = new Attention(heads, kvHeads, d);
        for (int p = s; p < n; p++) {
            attention.write(cache, 0, table, s, p, k, v, p);
        }
        float[] local = new float[heads * d];
        float[] localLse = new float[heads];
        attention.attend(cache, 0, q, new int[][] {table}, new int[] {n - 1}, new int[] {s}, 1, local, localLse);
        assertThat(localLse).as("lse of [s, n)").containsExactly(lse(q, k, heads, group, d, kvDim, s, n, scale),
                within(1e-4f));

        float[] remote = partial(q, k, v, heads, group, d, kvDim, 0, s, scale);
        float[] remoteLse = lse(q, k, heads, group, d, kvDim, 0, s, scale);
        Attention.merge(remote, 0, remoteLse, 0, local, 0, localLse, 0, heads, d);

        assertThat(local).containsExactly(partial(q, k, v, heads, group, d, kvDim, 0, n, scale), within(1e-5f));
        assertThat(localLse).containsExactly(lse(q, k, heads, group, d, kvDim, 0, n, scale), within(1e-4f));
    }

    @Property(tries = 200)
    void merge_isTheLogSumExpFormula(@ForAll @IntRange(min = -60, max = 60) int lseA,
                                     @ForAll @IntRange(min = -60, max = 60) int lseB, @ForAll long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int heads = 2;
        int d = 3;
        float[] outA = random(r, heads * d, 1);
        float[] outB = random(r, heads * d, 1);
        float[] la = {lseA + 0.25f, lseB - 0.5f};
        float[] lb = {lseB + 0.125f, lseA};
        float[] expected = new float[heads * d];
        float[] expectedLse = new float[heads];
        for (int h = 0; h < heads; h++) {
            // out = (e^{lse_a} out_a + e^{lse_b} out_b) / (e^{lse_a} + e^{lse_b}), lse = log(e^{lse_a} + e^{lse_b}).
            double ea = Math.exp(la[h]);
            double eb = Math.exp(lb[h]);
            for (int x = 0; x < d; x++) {
                expected[h * d + x] = (float) ((ea * outA[h * d + x] + eb * outB[h * d + x]) / (ea + eb));
            }
            expectedLse[h] = (float) Math.log(ea + eb);
        }
        Attention.merge(outA, 0, la, 0, outB, 0, lb, 0, heads, d);
        assertThat(outB).containsExactly(expected, within(1e-6f));
        assertThat(lb).containsExactly(expectedLse, within(1e-5f));
    }

    @Test
    void merge_ofPartialsFarApartInScale_keepsTheLargerOne_withoutOverflow() {
        float[] outA = {1, 2};
        float[] outB = {5, 7};
        float[] la = {1000f};
        float[] lb = {-1000f};
        Attention.merge(outA, 0, la, 0, outB, 0, lb, 0, 1, 2);
        assertThat(outB).containsExactly(1f, 2f);
        assertThat(lb).containsExactly(1000f);
    }

    private static float[] random(SplittableRandom r, int n, int magnitude) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((r.nextDouble() * 2 - 1) * magnitude);
        }
        return x;
    }

    /** Attention of every head over positions [from, to), normalised within them, in double precision. */
    private static float[] partial(float[] q, float[] k, float[] v, int heads, int group, int d, int kvDim, int from,
                                   int to, float scale) {
        float[] out = new float[heads * d];
        float[] lse = lse(q, k, heads, group, d, kvDim, from, to, scale);
        for (int h = 0; h < heads; h++) {
            int ko = (h / group) * d;
            for (int x = 0; x < d; x++) {
                double acc = 0;
                for (int j = from; j < to; j++) {
                    acc += Math.exp(score(q, k, h, ko, d, kvDim, j, scale) - lse[h]) * v[j * kvDim + ko + x];
                }
                out[h * d + x] = (float) acc;
            }
        }
        return out;
    }

    private static float[] lse(float[] q, float[] k, int heads, int group, int d, int kvDim, int from,
                               int to, float scale) {
        float[] lse = new float[heads];
        for (int h = 0; h < heads; h++) {
            int ko = (h / group) * d;
            double max = Double.NEGATIVE_INFINITY;
            for (int j = from; j < to; j++) {
                max = Math.max(max, score(q, k, h, ko, d, kvDim, j, scale));
            }
            double sum = 0;
            for (int j = from; j < to; j++) {
                sum += Math.exp(score(q, k, h, ko, d, kvDim, j, scale) - max);
            }
            lse[h] = (float) (max + Math.log(sum));
        }
        return lse;
    }

    private static double score(float[] q, float[] k, int h, int ko, int d, int kvDim, int j, float scale) {
        double dot = 0;
        for (int x = 0; x < d; x++) {
            dot += (double) q[h * d + x] * k[j * kvDim + ko + x];
        }
        return dot * scale;
    }
}
