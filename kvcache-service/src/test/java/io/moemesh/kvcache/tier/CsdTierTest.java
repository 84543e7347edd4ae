package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.attend.BlockAttention;
import io.moemesh.kvcache.attend.PartialAttention;
import io.moemesh.kvcache.block.KvBlock;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CsdTierTest {
    @TempDir
    Path dir;

    @Test
    void attend_overStoredBlocks_equalsAttentionOverTheSameBlocksInMemory() {
        try (CsdTier csd = new CsdTier(SsdTierTest.open(SsdConfig.defaults(dir, 1 << 20)))) {
            assertThat(csd.kind()).isEqualTo(TierKind.CSD);
            for (int i = 0; i < 3; i++) {
                csd.put(block(i));
            }
            float[] q = new float[4 * LAYOUT.headDim()];
            for (int i = 0; i < q.length; i++) {
                q[i] = (i % 7) * 0.3f - 1;
            }
            float scale = BlockAttention.defaultScale(LAYOUT.headDim());
            PartialAttention stored = csd.attend(q, 4, List.of(key(0), key(1), key(2)), 1, 9, scale);
            PartialAttention inMemory = BlockAttention.attend(q, 4, List.<KvBlock>of(block(0), block(1), block(2)),
                    LAYOUT, 1, 9, scale);
            assertThat(stored.output()).containsExactly(inMemory.output());
            assertThat(stored.lse()).containsExactly(inMemory.lse());
        }
    }

    @Test
    void attend_failsNamingTheFirstMissingBlock() {
        try (CsdTier csd = new CsdTier(SsdTierTest.open(SsdConfig.defaults(dir, 1 << 20)))) {
            csd.put(block(0));
            assertThatThrownBy(() -> csd.attend(new float[8], 2, List.of(key(0), key(1)), 0, 8, 1f))
                    .isInstanceOf(BlockNotFoundException.class).hasMessageContaining(key(1).toString());
            assertThatThrownBy(() -> csd.attend(new float[8], 2, List.of(key(0)), 0, 5, 1f))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith("validPositions");
        }
    }
}
