package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.block;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.time.Duration;
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
}
