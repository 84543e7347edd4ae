package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.BLOCK_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.LruPolicy;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class DramTierTest {
    private final List<KvBlock> evicted = new ArrayList<>();
    private final AtomicLong clock = new AtomicLong();

    private DramTier tier(int blocks) {
        return new DramTier(TestBlocks.LAYOUT, (long) blocks * BLOCK_BYTES, new LruPolicy(), clock::incrementAndGet,
                evicted::add);
    }

    @Test
    void get_returnsTheStoredBytes_andCountsHitsAndMisses() {
        DramTier t = tier(4);
        assertThat(t.put(block(1))).isEqualTo(PutResult.STORED);
        assertThat(t.put(block(1))).isEqualTo(PutResult.ALREADY_PRESENT);
        assertThat(t.get(key(1))).hasValueSatisfying(b -> assertThat(b.sameContent(block(1))).isTrue());
        assertThat(t.get(key(2))).isEmpty();
        TierStats s = t.stats();
        assertThat(s.hits()).isEqualTo(1);
        assertThat(s.misses()).isEqualTo(1);
        assertThat(s.bytesRead()).isEqualTo(BLOCK_BYTES);
        assertThat(s.bytesWritten()).isEqualTo(BLOCK_BYTES);
        assertThat(s.blocks()).isEqualTo(1);
        assertThat(s.usedBytes()).isEqualTo(BLOCK_BYTES);
    }

    @Test
    void eviction_takesTheLeastRecentlyUsed_andHandsItToTheSinkFirst() {
        DramTier t = tier(3);
        t.put(block(1));
        t.put(block(2));
        t.put(block(3));
        t.get(key(1));
        t.put(block(4));
        t.put(block(5));
        assertThat(evicted).extracting(KvBlock::key).containsExactly(key(2), key(3));
        assertThat(t.contains(key(1))).isTrue();
        assertThat(t.usedBytes()).isEqualTo(3L * BLOCK_BYTES);
        assertThat(t.stats().evictions()).isEqualTo(2);
    }

    @Test
    void pinnedBlocks_areNeverEvicted_andAFullyPinnedTierRefusesWithNoSpace_unchanged() {
        DramTier t = tier(2);
        t.put(block(1));
        t.put(block(2));
        assertThat(t.pin(key(1))).isTrue();
        t.put(block(3));
        assertThat(evicted).extracting(KvBlock::key).containsExactly(key(2));
        t.pin(key(3));
        assertThat(t.put(block(4))).isEqualTo(PutResult.NO_SPACE);
        assertThat(t.contains(key(1))).isTrue();
        assertThat(t.contains(key(3))).isTrue();
        assertThat(t.contains(key(4))).isFalse();
        assertThat(evicted).hasSize(1);
        assertThat(t.unpin(key(1))).isTrue();
        assertThat(t.put(block(4))).isEqualTo(PutResult.STORED);
        assertThat(evicted).extracting(KvBlock::key).containsExactly(key(2), key(1));
    }

    @Test
    void pin_ofAnAbsentBlock_pinsNothing() {
        DramTier t = tier(2);
        assertThat(t.pin(key(9))).isFalse();
        assertThat(t.unpin(key(9))).isFalse();
        assertThat(t.isPinned(key(9))).isFalse();
    }

    @Test
    void remove_dropsEvenAPinnedBlock_andFreesItsBytes() {
        DramTier t = tier(2);
        t.put(block(1));
        t.pin(key(1));
        assertThat(t.remove(key(1))).isTrue();
        assertThat(t.remove(key(1))).isFalse();
        assertThat(t.usedBytes()).isZero();
        t.put(block(2));
        t.put(block(3));
        assertThat(evicted).isEmpty();
    }

    @Test
    void put_refused_forABlockOfAnotherLayout_tierUnchanged() {
        DramTier t = tier(2);
        KvBlock other = block(1, new KvLayout(2, 2, 4, 8));
        assertThatThrownBy(() -> t.put(other)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("but the DRAM tier stores");
        assertThat(t.blockCount()).isZero();
    }

    @Test
    void construction_refused_belowOneBlock() {
        assertThatThrownBy(() -> new DramTier(TestBlocks.LAYOUT, BLOCK_BYTES - 1, new LruPolicy()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at least one block");
    }

    @Test
    void history_recordsCountsTimesAndChainPosition() {
        DramTier t = tier(2);
        t.put(block(1), AccessHint.atChainPosition(5));
        t.get(key(1));
        assertThat(t.history(key(1))).hasValueSatisfying(h -> {
            assertThat(h.accessCount()).isEqualTo(2);
            assertThat(h.firstAccess()).isEqualTo(1);
            assertThat(h.lastAccess()).isEqualTo(2);
            assertThat(h.chainPosition()).isEqualTo(5);
        });
    }

    @Test
    void aFailingSink_dropsTheVictim_andThePutStillSucceeds() {
        DramTier t = new DramTier(TestBlocks.LAYOUT, BLOCK_BYTES, new LruPolicy(), System::nanoTime, b -> {
            throw new IllegalStateException("disk gone");
        });
        t.put(block(1));
        assertThat(t.put(block(2))).isEqualTo(PutResult.STORED);
        assertThat(t.contains(key(1))).isFalse();
    }
}
