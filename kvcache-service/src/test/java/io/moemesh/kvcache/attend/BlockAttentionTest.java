package io.moemesh.kvcache.attend;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.tier.TestBlocks;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class BlockAttentionTest {
    /** 2 layers, 2 KV heads, headDim 4, 4 tokens per block. */
    private static final KvLayout LAYOUT = TestBlocks.LAYOUT;

    private static List<KvBlock> blocks(int n) {
        List<KvBlock> b = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            b.add(TestBlocks.block(i));
        }
        return b;
    }

    private static float[] query(int heads, long seed) {
        Random r = new Random(seed);
        float[] q = new float[heads * LAYOUT.headDim()];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) r.nextGaussian() * 2;
        }
        return q;
    }

    /** The textbook two-pass softmax, straight from the kvcache.v1 Attend comment. */
    private static PartialAttention reference(float[] q, int heads, List<KvBlock> blocks, int layer, int valid,
                                              float scale) {
        int dim = LAYOUT.headDim();
        int bt = LAYOUT.blockTokens();
        PartialAttention out = PartialAttention.empty(heads, dim);
        for (int h = 0; h < heads; h++) {
            int g = h / (heads / LAYOUT.kvHeads());
            double[] s = new double[valid];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < valid; j++) {
                float[] f = blocks.get(j / bt).toFloats();
                for (int d = 0; d < dim; d++) {
                    s[j] += q[h * dim + d] * (double) f[LAYOUT.offset(layer, false, g, j % bt, d)];
                }
                s[j] *= scale;
                max = Math.max(max, s[j]);
            }
            if (valid == 0) {
                continue;
            }
            double sum = 0;
            for (int j = 0; j < valid; j++) {
                sum += Math.exp(s[j] - max);
            }
            double lse = max + Math.log(sum);
            out.lse()[h] = (float) lse;
            for (int j = 0; j < valid; j++) {
                float[] f = blocks.get(j / bt).toFloats();
                for (int d = 0; d < dim; d++) {
                    out.output()[h * dim + d] += (float) (Math.exp(s[j] - lse)
                            * f[LAYOUT.offset(layer, true, g, j % bt, d)]);
                }
            }
        }
        return out;
    }

    private static void assertClose(PartialAttention a, PartialAttention b) {
        for (int i = 0; i < a.output().length; i++) {
            assertThat(a.output()[i]).as("output %d", i).isCloseTo(b.output()[i], within(1e-5f));
        }
        for (int h = 0; h < a.lse().length; h++) {
            if (b.lse()[h] == Float.NEGATIVE_INFINITY) {
                assertThat(a.lse()[h]).isEqualTo(Float.NEGATIVE_INFINITY);
            } else {
                assertThat(a.lse()[h]).as("lse %d", h).isCloseTo(b.lse()[h], within(1e-5f));
            }
        }
    }

    @Test
    void attend_matchesTheTwoPassReference_withGqaHeadMapping() {
        List<KvBlock> b = blocks(3);
        float scale = BlockAttention.defaultScale(LAYOUT.headDim());
        for (int heads : new int[] {2, 4, 8}) {
            for (int layer = 0; layer < 2; layer++) {
                float[] q = query(heads, heads * 10L + layer);
                assertClose(BlockAttention.attend(q, heads, b, LAYOUT, layer, 10, scale),
                        reference(q, heads, b, layer, 10, scale));
            }
        }
    }

    @Test
    void attend_overNoVisiblePosition_isZeroWithMinusInfinityLse() {
        PartialAttention p = BlockAttention.attend(query(4, 1), 4, blocks(1), LAYOUT, 0, 0, 0.5f);
        assertThat(p.output()).containsOnly(0f);
        assertThat(p.lse()).containsOnly(Float.NEGATIVE_INFINITY);
    }

    @Test
    void attend_refusesBadShapes_namingTheField() {
        List<KvBlock> b = blocks(2);
        assertThatThrownBy(() -> BlockAttention.attend(query(3, 1), 3, b, LAYOUT, 0, 4, 1))
                .hasMessageStartingWith("numHeads must be a positive multiple of kvHeads 2");
        assertThatThrownBy(() -> BlockAttention.attend(new float[5], 4, b, LAYOUT, 0, 4, 1))
                .hasMessageStartingWith("query must have");
        assertThatThrownBy(() -> BlockAttention.attend(query(4, 1), 4, b, LAYOUT, 2, 4, 1))
                .hasMessageStartingWith("layer must be in [0, 2)");
        assertThatThrownBy(() -> BlockAttention.attend(query(4, 1), 4, b, LAYOUT, 0, 9, 1))
                .hasMessageStartingWith("validPositions must be in [0, 8]");
        assertThatThrownBy(() -> BlockAttention.attend(query(4, 1), 4, b, LAYOUT, 0, 4, Float.NaN))
                .hasMessageStartingWith("scale must be finite and positive");
    }

    @Test
    void merge_refusesMismatchedShapes_andAnEmptyList() {
        assertThatThrownBy(() -> PartialAttention.merge(List.of())).hasMessageContaining("at least one");
        assertThatThrownBy(() -> PartialAttention.merge(List.of(PartialAttention.empty(2, 4),
                PartialAttention.empty(2, 8)))).hasMessageContaining("cannot be merged");
    }

    /**
     * Flash-decoding's split-K: cutting the positions at random points, attending each piece on its own and
     * merging gives attention over the whole (within 1e-5).
     */
    @Property(tries = 200)
    void mergingThePartialsOfASplit_equalsAttentionOverTheWhole(@ForAll @IntRange(min = 1, max = 5) int nBlocks,
                                                                 @ForAll @IntRange(min = 1, max = 4) int groups,
                                                                 @ForAll @IntRange(min = 0, max = 1) int layer,
                                                                 @ForAll long seed) {
        Random r = new Random(seed);
        int bt = LAYOUT.blockTokens();
        int heads = LAYOUT.kvHeads() * groups;
        List<KvBlock> all = new ArrayList<>();
        for (int i = 0; i < nBlocks; i++) {
            all.add(TestBlocks.block(r.nextInt(1000)));
        }
        int valid = 1 + r.nextInt(nBlocks * bt);
        float[] q = query(heads, seed);
        float scale = BlockAttention.defaultScale(LAYOUT.headDim());
        PartialAttention whole = BlockAttention.attend(q, heads, all, LAYOUT, layer, valid, scale);
        assertClose(whole, reference(q, heads, all, layer, valid, scale));
        // Split at block boundaries (what the tiers can hold apart), into 1..nBlocks pieces; a piece may be empty.
        List<PartialAttention> parts = new ArrayList<>();
        int usedBlocks = (valid + bt - 1) / bt;
        int from = 0;
        while (from < usedBlocks) {
            int to = from + 1 + r.nextInt(usedBlocks - from);
            int piecePositions = Math.min(valid, to * bt) - from * bt;
            parts.add(BlockAttention.attend(q, heads, all.subList(from, to), LAYOUT, layer, piecePositions, scale));
            if (r.nextBoolean()) {
                parts.add(PartialAttention.empty(heads, LAYOUT.headDim()));
            }
            from = to;
        }
        java.util.Collections.shuffle(parts, r);
        assertClose(PartialAttention.merge(parts), whole);
    }
}
