package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.MODEL;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.policy.BlockHistory;
import io.moemesh.kvcache.policy.EvictionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongSupplier;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** What a put whose record is written but not admitted leaves behind, and what an admitted one makes durable. */
class SsdPutTakeBackTest {
    @TempDir
    Path dir;

    /** Room for 2 records, all in one segment; INTERVAL never due by itself (a 1 h interval, 1 GiB threshold). */
    private SsdConfig config(FsyncPolicy fsync) {
        return new SsdConfig(dir, 2L * RECORD_BYTES, 1 << 20, fsync, Duration.ofHours(1), 1L << 30, 0.5,
                PayloadEncoding.FLOAT32);
    }

    @ParameterizedTest
    @EnumSource(FsyncPolicy.class)
    void put_whoseRoomIsPinnedAwayAfterItsRecordIsWritten_returnsNoSpace_andCutsTheRecordOffDurably(
            FsyncPolicy fsync) throws IOException {
        AtomicReference<SsdTier> tier = new AtomicReference<>();
        AtomicBoolean pinOnNextTick = new AtomicBoolean();
        // The put reads the clock after its append, before admit: the pins land between roomFor and admit.
        LongSupplier clock = () -> {
            if (pinOnNextTick.getAndSet(false)) {
                tier.get().pin(key(1));
                tier.get().pin(key(2));
            }
            return System.nanoTime();
        };
        SsdConfig c = config(fsync);
        try (SsdTier t = SsdTier.open(c, LAYOUT, MODEL, new LruPolicy(), clock)) {
            tier.set(t);
            t.put(block(1));
            t.put(block(2));
            Segment seg = t.segments().getLast();
            long sizeBefore = seg.size();
            pinOnNextTick.set(true);

            assertThat(t.put(block(3))).isEqualTo(PutResult.NO_SPACE);

            assertThat(seg.size()).as("the record is cut off").isEqualTo(sizeBefore);
            assertThat(Files.size(seg.path)).isEqualTo(sizeBefore);
            if (fsync != FsyncPolicy.NEVER) {
                assertThat(seg.forcedSize()).as("the cut is durable before NO_SPACE is returned")
                        .isEqualTo(seg.size());
            }
            assertThat(t.stats().evictions()).isZero();
            assertThat(t.blockCount()).isEqualTo(2);
            assertThat(t.contains(key(3))).isFalse();
        }
        try (SsdTier t = SsdTierTest.open(c)) {
            assertThat(t.contains(key(3))).as("the block whose put returned NO_SPACE").isFalse();
            assertThat(t.contains(key(1))).isTrue();
            assertThat(t.contains(key(2))).isTrue();
        }
    }

    @Test
    void put_underAlways_forcesTheTombstonesOfTheBlocksItEvicted_beforeItReturns() {
        try (SsdTier t = SsdTierTest.open(config(FsyncPolicy.ALWAYS))) {
            t.put(block(1));
            t.put(block(2));

            assertThat(t.put(block(3))).isEqualTo(PutResult.STORED);

            assertThat(t.stats().evictions()).isEqualTo(1);
            DeadLog tombstones = t.segments().getFirst().deadLog();
            assertThat(tombstones.size()).as("block 1's tombstone").isPositive();
            assertThat(tombstones.forcedSize()).isEqualTo(tombstones.size());
        }
    }

    @Test
    void put_whoseAdmitThrows_takesItsRecordBack_soNoRestartServesIt() throws IOException {
        FailingVictims policy = new FailingVictims();
        SsdConfig c = config(FsyncPolicy.ALWAYS);
        try (SsdTier t = SsdTier.open(c, LAYOUT, MODEL, policy)) {
            t.put(block(1));
            t.put(block(2));
            Segment seg = t.segments().getLast();
            long sizeBefore = seg.size();
            policy.broken = true;

            assertThatThrownBy(() -> t.put(block(3))).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("found no unpinned block");

            assertThat(seg.size()).isEqualTo(sizeBefore);
            assertThat(seg.forcedSize()).isEqualTo(sizeBefore);
            assertThat(t.contains(key(3))).isFalse();
            assertThat(t.blockCount()).isEqualTo(2);
        }
        try (SsdTier t = SsdTierTest.open(c)) {
            assertThat(t.contains(key(3))).as("the block whose put threw").isFalse();
            assertThat(t.contains(key(1))).as("not evicted at open for an orphan's room").isTrue();
            assertThat(t.contains(key(2))).isTrue();
        }
    }

    /** LRU whose victim search finds nothing once broken: the index's invariant check throws in admit. */
    private static final class FailingVictims implements EvictionPolicy {
        private final LruPolicy lru = new LruPolicy();
        volatile boolean broken;

        @Override
        public void onInsert(BlockHistory history) {
            lru.onInsert(history);
        }

        @Override
        public void onAccess(BlockHistory history) {
            lru.onAccess(history);
        }

        @Override
        public void onRemove(BlockKey key) {
            lru.onRemove(key);
        }

        @Override
        public Optional<BlockKey> victim(Predicate<BlockKey> evictable) {
            return broken ? Optional.empty() : lru.victim(evictable);
        }
    }
}
