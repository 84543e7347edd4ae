package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.LAYOUT;
import static io.moemesh.kvcache.tier.TestBlocks.MODEL;
import static io.moemesh.kvcache.tier.TestBlocks.RECORD_BYTES;
import static io.moemesh.kvcache.tier.TestBlocks.block;
import static io.moemesh.kvcache.tier.TestBlocks.key;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.service.kvcache.KvRecordFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link SsdTier#locate}: the extent it names is the record, and its lease defers compaction's unlink. */
class SsdLeaseTest {
    @TempDir
    Path dir;
    private final AtomicLong clock = new AtomicLong(1_000);

    private SsdTier open() {
        SsdConfig c = SsdConfig.defaults(dir, 1 << 20).withSegmentBytes(128 + 4L * RECORD_BYTES)
                .withFsync(FsyncPolicy.NEVER);
        return SsdTier.open(c, LAYOUT, MODEL, new LruPolicy(), clock::get);
    }

    /** Segment 1 holds blocks 0..3; with 0, 1, 2 removed it is below the live fraction, block 3 its live record. */
    private static void sparseFirstSegment(SsdTier t) {
        for (int i = 0; i < 12; i++) {
            t.put(block(i));
        }
        for (int i : new int[] {0, 1, 2}) {
            t.remove(key(i));
        }
    }

    @Test
    void locate_namesTheRecordsExtent_whichReadsAndChecksAsTheTiersOwnRead() throws IOException {
        try (SsdTier t = open()) {
            sparseFirstSegment(t);
            long hitsBefore = t.stats().hits();
            RecordExtent e = t.locate(key(5), AccessHint.NONE, clock.get() + 10).orElseThrow();
            assertThat(e.path()).isAbsolute();
            assertThat(e.length()).isEqualTo(RECORD_BYTES);
            assertThat(e.encoding()).isEqualTo(PayloadEncoding.FLOAT32);
            ByteBuffer rec = read(e);
            byte[] payload = new byte[TestBlocks.BLOCK_BYTES];
            assertThat(KvRecordFormat.verifyInto(rec, TestBlocks.BLOCK_BYTES, payload)).isTrue();
            assertThat(KvRecordFormat.hasKey(rec, key(5).bytes())).isTrue();
            assertThat(KvRecordFormat.storedCrc(rec)).isEqualTo(e.crc());
            assertThat(ByteBuffer.wrap(payload)).isEqualTo(block(5).data());
            assertThat(t.stats().hits()).as("a located block counts as a hit").isEqualTo(hitsBefore + 1);
            assertThat(t.locate(key(0), AccessHint.NONE, clock.get() + 10)).as("removed").isEmpty();
        }
    }

    @Test
    void compaction_defersTheUnlinkOfALeasedSegment_andTheLeasesEndReleasesIt() throws IOException {
        try (SsdTier t = open()) {
            sparseFirstSegment(t);
            RecordExtent e = t.locate(key(3), AccessHint.NONE, clock.get() + 500).orElseThrow();
            CompactionResult r = t.compact();
            assertThat(r.segmentsCompacted()).isEqualTo(1);
            assertThat(r.bytesReclaimed()).as("nothing freed while the lease runs").isNegative();
            assertThat(e.path()).as("leased: kept").exists();
            assertThat(t.leases().keptCount()).isEqualTo(1);
            // the extent still reads as the block, and the tier reads it from its new place
            assertThat(KvRecordFormat.verify(read(e), TestBlocks.BLOCK_BYTES)).isTrue();
            assertThat(t.get(key(3))).hasValueSatisfying(b -> assertThat(b.sameContent(block(3))).isTrue());
            assertThat(t.locate(key(3), AccessHint.NONE, clock.get() + 1).orElseThrow().path())
                    .isNotEqualTo(e.path());

            clock.addAndGet(499);
            assertThat(t.releaseExpiredLeases()).as("still leased at 499 of 500 ms").isZero();
            assertThat(e.path()).exists();
            clock.addAndGet(1);
            t.releaseExpiredLeases(); // unlinks it, unless the tier's own sweep (below) just did
            assertThat(e.path()).doesNotExist();
            assertThat(t.leases().keptCount()).isZero();
        }
    }

    @Test
    void aKeptVictim_isUnlinkedSoonAfterItsLeaseEnds_withoutAnotherCompaction() {
        try (SsdTier t = open()) {
            sparseFirstSegment(t);
            RecordExtent e = t.locate(key(3), AccessHint.NONE, clock.get() + 500).orElseThrow();
            assertThat(t.compact().segmentsCompacted()).isEqualTo(1);
            assertThat(e.path()).as("leased: kept").exists();
            clock.addAndGet(500);
            // No compaction runs again (a compaction period away, or never when it is off): the sweep unlinks it.
            await().atMost(Duration.ofSeconds(10)).until(() -> !Files.exists(e.path()));
            assertThat(t.leases().keptCount()).isZero();
        }
    }

    @Test
    void compaction_unlinksASegmentWhoseLeaseEnded_atOnce() {
        try (SsdTier t = open()) {
            sparseFirstSegment(t);
            RecordExtent e = t.locate(key(3), AccessHint.NONE, clock.get() + 5).orElseThrow();
            clock.addAndGet(5);
            assertThat(t.compact().segmentsCompacted()).isEqualTo(1);
            assertThat(e.path()).doesNotExist();
            assertThat(t.leases().keptCount()).isZero();
        }
    }

    @Test
    void aVictimKeptForALease_isDeletedByTheNextOpen_andACopyLetGoOfMeanwhileStaysGone() {
        RecordExtent e;
        try (SsdTier t = open()) {
            sparseFirstSegment(t);
            e = t.locate(key(3), AccessHint.NONE, clock.get() + 500).orElseThrow();
            assertThat(t.compact().segmentsCompacted()).isEqualTo(1);
            t.remove(key(3)); // its copy, in the new segment
        }
        assertThat(e.path()).as("closed while the lease ran: kept, marked retired").exists();
        try (SsdTier t = open()) {
            assertThat(t.openReport().retiredSegments()).isEqualTo(1);
            assertThat(e.path()).doesNotExist();
            assertThat(t.contains(key(3))).as("not back from the retired segment").isFalse();
            assertThat(t.blockCount()).isEqualTo(8);
        }
    }

    private static ByteBuffer read(RecordExtent e) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(e.length());
        try (FileChannel ch = FileChannel.open(e.path(), StandardOpenOption.READ)) {
            while (b.hasRemaining()) {
                if (ch.read(b, e.offset() + b.position()) < 0) {
                    throw new IOException("short");
                }
            }
        }
        return b.flip();
    }
}
