package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.MODEL;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.policy.EvictionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A failed put's take-back when the disk fails it (the cut, or the cut's force) and when the eviction policy throws
 * inside the admit: what is counted, tombstoned and forced, and what a reopen and a compaction make of it.
 */
class SsdTakeBackFailureTest {
    @TempDir
    Path dir;

    private final AtomicBoolean forceFails = new AtomicBoolean();
    private final AtomicBoolean cutFails = new AtomicBoolean();

    private final FsyncSchedule.SegmentForce disk = s -> {
        if (forceFails.get()) {
            throw new IOException("injected: fsync reported an I/O error");
        }
        s.force();
    };

    private final ActiveSegment.SegmentCut cutter = (s, bytes) -> {
        if (cutFails.get()) {
            throw new IOException("injected: ftruncate reported an I/O error");
        }
        s.truncateTo(bytes);
    };

    /** Room for 2 records, all in one segment; ALWAYS forces every put. */
    private SsdConfig config() {
        return new SsdConfig(dir, 2L * RECORD_BYTES, 1 << 20, FsyncPolicy.ALWAYS, Duration.ofHours(1), 1L << 30, 0.5,
                PayloadEncoding.FLOAT32);
    }

    private SsdTier open(SsdConfig c, EvictionPolicy policy) {
        return SsdTier.open(c, LAYOUT, MODEL, policy, System::nanoTime, disk, cutter);
    }

    @Test
    void takeBack_cutDoneButItsForceFails_countsNoDeadBytes_butTombstonesTheRecordForced() throws IOException {
        SsdConfig c = config();
        try (SsdTier t = open(c, new LruPolicy())) {
            t.put(block(1));
            t.put(block(2));
            Segment seg = t.segments().getLast();
            long sizeBefore = seg.size();
            forceFails.set(true);

            assertThatThrownBy(() -> t.put(block(3))).isInstanceOf(UncheckedIOException.class);

            forceFails.set(false);
            assertThat(Files.size(seg.path)).as("the record is cut off").isEqualTo(sizeBefore);
            assertThat(t.deadBytes()).as("a cut record is not in the file: no dead space").isZero();
            assertThat(seg.deadLog().size()).as("tombstoned: the cut may not be durable").isPositive();
            assertThat(seg.deadLog().forcedSize()).isEqualTo(seg.deadLog().size());
            assertThat(t.contains(key(3))).isFalse();
        }
        try (SsdTier t = open(c, new LruPolicy())) {
            assertThat(t.contains(key(3))).isFalse();
            assertThat(t.contains(key(1))).isTrue();
            assertThat(t.contains(key(2))).isTrue();
            assertThat(t.deadBytes()).as("the tombstone names no record in the file").isZero();
        }
    }

    @Test
    void takeBack_cutFails_countsTheRecordDead_tombstonesItForced_andTheNextPutGoesToAFreshSegment() {
        SsdConfig c = config();
        try (SsdTier t = open(c, new LruPolicy())) {
            forceFails.set(true);
            cutFails.set(true);

            assertThatThrownBy(() -> t.put(block(1))).isInstanceOf(UncheckedIOException.class);

            forceFails.set(false);
            cutFails.set(false);
            Segment seg = t.segments().getLast();
            assertThat(seg.recordArea()).as("the record stays in the file").isEqualTo(RECORD_BYTES);
            assertThat(t.deadBytes()).as("the record left in the file is dead space").isEqualTo(RECORD_BYTES);
            assertThat(seg.deadLog().size()).isPositive();
            assertThat(seg.deadLog().forcedSize()).as("tombstone forced before the put fails")
                    .isEqualTo(seg.deadLog().size());
            assertThat(t.contains(key(1))).isFalse();

            assertThat(t.put(block(2))).isEqualTo(PutResult.STORED);

            assertThat(t.segments()).hasSize(2);
            assertThat(t.segments().getLast()).as("the segment with the uncut record takes no more appends")
                    .isNotSameAs(seg);
        }
        try (SsdTier t = open(c, new LruPolicy())) {
            assertThat(t.contains(key(1))).as("the tombstone keeps the failed put's record unserved").isFalse();
            assertThat(t.contains(key(2))).isTrue();
            assertThat(t.deadBytes()).isEqualTo(RECORD_BYTES);

            CompactionResult r = t.compact();

            assertThat(r.segmentsCompacted()).as("the all-dead segment").isEqualTo(1);
            assertThat(r.recordsMoved()).isZero();
            assertThat(t.deadBytes()).isZero();
            assertThat(t.segments()).hasSize(1);
            assertThat(t.contains(key(1))).isFalse();
            assertThat(t.get(key(2))).isPresent();
        }
        try (SsdTier t = open(c, new LruPolicy())) {
            assertThat(t.contains(key(1))).isFalse();
            assertThat(t.contains(key(2))).isTrue();
            assertThat(t.blockCount()).isEqualTo(1);
        }
    }

    @Test
    void put_whosePolicyInsertThrows_leavesNothingIndexed_soTheKeyCanBePutAgain() {
        ThrowingPolicy policy = new ThrowingPolicy();
        SsdConfig c = config();
        try (SsdTier t = open(c, policy)) {
            policy.insertThrows = true;

            assertThatThrownBy(() -> t.put(block(1))).isInstanceOf(IllegalStateException.class);

            policy.insertThrows = false;
            assertThat(t.contains(key(1))).as("the index does not point at the record taken back").isFalse();
            assertThat(t.blockCount()).isZero();
            assertThat(t.put(block(1))).isEqualTo(PutResult.STORED);
            assertThat(t.get(key(1))).isPresent();
        }
        try (SsdTier t = open(c, new LruPolicy())) {
            assertThat(t.contains(key(1))).isTrue();
            assertThat(t.blockCount()).isEqualTo(1);
        }
    }

    @Test
    void put_whosePolicyInsertThrowsAfterEvicting_forcesTheEvictionsTombstones_underAlways() {
        ThrowingPolicy policy = new ThrowingPolicy();
        SsdConfig c = config();
        try (SsdTier t = open(c, policy)) {
            t.put(block(1));
            t.put(block(2));
            policy.insertThrows = true;

            assertThatThrownBy(() -> t.put(block(3))).isInstanceOf(IllegalStateException.class);

            DeadLog tombstones = t.segments().getFirst().deadLog();
            assertThat(tombstones.size()).as("block 1's tombstone").isPositive();
            assertThat(tombstones.forcedSize()).as("forced before the put fails").isEqualTo(tombstones.size());
            assertThat(t.contains(key(1))).isFalse();
            assertThat(t.contains(key(3))).isFalse();
        }
        try (SsdTier t = open(c, new LruPolicy())) {
            assertThat(t.contains(key(1))).as("evicted").isFalse();
            assertThat(t.contains(key(2))).isTrue();
            assertThat(t.contains(key(3))).as("the block whose put threw").isFalse();
        }
    }

    @Test
    void put_whosePolicyRemoveThrowsForItsVictim_stillTombstonesTheVictim() {
        ThrowingPolicy policy = new ThrowingPolicy();
        SsdConfig c = config();
        try (SsdTier t = open(c, policy)) {
            t.put(block(1));
            t.put(block(2));
            policy.removeThrows = true;

            assertThatThrownBy(() -> t.put(block(3))).isInstanceOf(IllegalStateException.class);

            DeadLog tombstones = t.segments().getFirst().deadLog();
            assertThat(tombstones.size()).as("the victim's tombstone").isPositive();
            assertThat(tombstones.forcedSize()).isEqualTo(tombstones.size());
            assertThat(t.contains(key(1))).isFalse();
            assertThat(t.contains(key(3))).isFalse();
        }
        try (SsdTier t = open(c, new LruPolicy())) {
            assertThat(t.contains(key(1))).as("out of the index before the throw: must not come back").isFalse();
            assertThat(t.contains(key(2))).isTrue();
            assertThat(t.contains(key(3))).isFalse();
        }
    }
}
