package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.BLOCK_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.MODEL;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A remove whose eviction policy throws in onRemove (a broken policy) fails, but what it already took out of a tier
 * is tombstoned: the removed block does not come back after a restart, and the tiers' counts match what they hold.
 */
class RemoveWithThrowingPolicyTest {
    @TempDir
    Path dir;

    private SsdConfig config() {
        return SsdConfig.defaults(dir, 10L * RECORD_BYTES);
    }

    @Test
    void ssdRemove_whosePolicyRemoveThrows_stillTombstonesTheBlock_soARestartDoesNotServeIt() {
        ThrowingPolicy policy = new ThrowingPolicy();
        try (SsdTier t = SsdTier.open(config(), LAYOUT, MODEL, policy)) {
            t.put(block(1));
            t.put(block(2));
            policy.removeThrows = true;

            assertThatThrownBy(() -> t.remove(key(1))).isInstanceOf(IllegalStateException.class);

            assertThat(t.contains(key(1))).isFalse();
            assertThat(t.contains(key(2))).isTrue();
            assertThat(t.blockCount()).isEqualTo(1);
            assertThat(t.usedBytes()).isEqualTo(RECORD_BYTES);
            assertThat(t.deadBytes()).as("block 1's record is dead space").isEqualTo(RECORD_BYTES);
            assertThat(t.segments().getLast().deadLog().size()).as("block 1's tombstone").isPositive();
        }
        try (SsdTier t = SsdTierTest.open(config())) {
            assertThat(t.contains(key(1))).as("removed: must not come back").isFalse();
            assertThat(t.get(key(2))).isPresent();
            assertThat(t.blockCount()).isEqualTo(1);
        }
    }

    @Test
    void storeRemove_ofAPromotedBlock_whoseDramPolicyRemoveThrows_stillLetsGoOfItsSsdRecord() {
        ThrowingPolicy dramPolicy = new ThrowingPolicy();
        SsdTier ssd = SsdTierTest.open(config());
        try (TieredKvStore s = new TieredKvStore(LAYOUT, 2L * BLOCK_BYTES, dramPolicy, ssd,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime)) {
            s.put(block(1));
            s.put(block(2));
            s.put(block(3)); // demotes 1
            s.remove(key(3));
            assertThat(s.get(key(1)).orElseThrow().tier()).isEqualTo(TierKind.SSD); // promoted: DRAM 2, 1
            assertThat(ssd.index().promotedCount()).as("block 1's SSD record, kept while it is in DRAM").isOne();
            s.pin(key(1));
            dramPolicy.removeThrows = true;

            assertThatThrownBy(() -> s.remove(key(1))).isInstanceOf(IllegalStateException.class);

            assertThat(s.contains(key(1))).isFalse();
            assertThat(s.isPinned(key(1))).isFalse();
            assertThat(s.dram().usedBytes()).as("block 2 alone").isEqualTo(BLOCK_BYTES);
            assertThat(ssd.index().promotedCount()).as("the kept record let go of (tombstoned)").isZero();
        }
        try (SsdTier restarted = SsdTierTest.open(config())) {
            assertThat(restarted.contains(key(1))).as("removed: must not come back").isFalse();
        }
    }
}
