package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SsdDurabilityTest {
    @TempDir
    Path dir;

    private SsdConfig config(FsyncPolicy fsync, Duration interval) {
        return new SsdConfig(dir, 1 << 20, 1 << 20, fsync, interval, 1L << 30, 0.5, PayloadEncoding.FLOAT32);
    }

    @Test
    void always_forcesBeforeThePutReturns() {
        try (SsdTier t = SsdTierTest.open(config(FsyncPolicy.ALWAYS, Duration.ofHours(1)))) {
            t.put(block(1));
            assertThat(t.unsyncedBytes()).isZero();
        }
    }

    @Test
    void interval_forcesByTheTimer_withoutFurtherPuts() {
        try (SsdTier t = SsdTierTest.open(config(FsyncPolicy.INTERVAL, Duration.ofMillis(50)))) {
            t.put(block(1));
            await().atMost(Duration.ofSeconds(10)).until(() -> t.unsyncedBytes() == 0);
        }
    }

    @Test
    void interval_forcesOnAPut_onceTheBytesThresholdIsReached() {
        SsdConfig c = new SsdConfig(dir, 1 << 20, 1 << 20, FsyncPolicy.INTERVAL, Duration.ofHours(1),
                2L * TestBlocks.RECORD_BYTES, 0.5, PayloadEncoding.FLOAT32);
        try (SsdTier t = SsdTierTest.open(c)) {
            t.put(block(1));
            assertThat(t.unsyncedBytes()).isEqualTo(TestBlocks.RECORD_BYTES);
            t.put(block(2));
            assertThat(t.unsyncedBytes()).isZero();
        }
    }

    @Test
    void never_leavesItToTheOs_untilAnExplicitSync() {
        try (SsdTier t = SsdTierTest.open(config(FsyncPolicy.NEVER, Duration.ofMillis(1)))) {
            t.put(block(1));
            assertThat(t.unsyncedBytes()).isEqualTo(TestBlocks.RECORD_BYTES);
            t.sync();
            assertThat(t.unsyncedBytes()).isZero();
        }
    }

    @Test
    void sync_forcesEverySegmentWrittenSinceTheLastForce_notOnlyTheActiveOne() {
        // One record per segment: every put seals the previous segment, which NEVER does not force.
        SsdConfig c = config(FsyncPolicy.NEVER, Duration.ofHours(1)).withSegmentBytes(1);
        try (SsdTier t = SsdTierTest.open(c)) {
            for (int i = 0; i < 3; i++) {
                t.put(block(i));
            }
            List<Segment> segments = t.segments();
            assertThat(segments).hasSize(3).allSatisfy(s -> assertThat(s.forcedSize()).isZero());
            assertThat(t.unsyncedBytes()).isEqualTo(3L * RECORD_BYTES);

            t.sync(); // what SIGTERM does after demoting DRAM

            assertThat(segments).allSatisfy(s -> assertThat(s.forcedSize()).isEqualTo(s.size()));
            assertThat(t.unsyncedBytes()).isZero();
        }
    }

    @Test
    void close_forcesEverySegment_underNeverToo() {
        SsdConfig c = config(FsyncPolicy.NEVER, Duration.ofHours(1)).withSegmentBytes(1);
        List<Segment> segments;
        try (SsdTier t = SsdTierTest.open(c)) {
            for (int i = 0; i < 3; i++) {
                t.put(block(i));
            }
            segments = t.segments();
            assertThat(segments).hasSize(3).allSatisfy(s -> assertThat(s.forcedSize()).isZero());
        }
        assertThat(segments).allSatisfy(s -> assertThat(s.forcedSize()).isEqualTo(s.size()));
    }

    @Test
    void interval_keepsForcingASegmentAbandonedAfterAFailedAppend_itsAcknowledgedRecordsIncluded() {
        try (SsdTier t = SsdTierTest.open(config(FsyncPolicy.INTERVAL, Duration.ofMillis(500)))) {
            assertThat(t.put(block(1))).isEqualTo(PutResult.STORED); // acknowledged, not forced yet
            Segment abandoned = t.segments().getFirst();
            // An interrupt makes the next append fail (and closes the segment's channel): the tier goes on in a new
            // segment, but block 1's record is still only in the page cache.
            Thread.currentThread().interrupt();
            try {
                assertThatThrownBy(() -> t.put(block(2))).isInstanceOf(UncheckedIOException.class);
            } finally {
                Thread.interrupted();
            }
            assertThat(t.unsyncedBytes()).isEqualTo(RECORD_BYTES);

            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
                assertThat(abandoned.forcedSize()).isEqualTo(abandoned.size());
                assertThat(t.unsyncedBytes()).isZero();
            });
            assertThat(t.put(block(3))).isEqualTo(PutResult.STORED);
            assertThat(t.segments()).hasSize(2);
        }
    }

    @Test
    void sync_forcesASegmentAbandonedAfterAFailedAppend_besideTheActiveOne() {
        try (SsdTier t = SsdTierTest.open(config(FsyncPolicy.NEVER, Duration.ofHours(1)))) {
            t.put(block(1));
            Thread.currentThread().interrupt();
            try {
                assertThatThrownBy(() -> t.put(block(2))).isInstanceOf(UncheckedIOException.class);
            } finally {
                Thread.interrupted();
            }
            t.put(block(3));
            List<Segment> segments = t.segments();
            assertThat(segments).hasSize(2);
            assertThat(t.unsyncedBytes()).isEqualTo(2L * RECORD_BYTES);

            t.sync();

            assertThat(segments).allSatisfy(s -> assertThat(s.forcedSize()).isEqualTo(s.size()));
            assertThat(t.unsyncedBytes()).isZero();
        }
    }
}
