package io.moemesh.kvcache.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.tier.FsyncPolicy;
import io.moemesh.kvcache.tier.OrphanedStores.Orphan;
import io.moemesh.service.settings.SettingRefusedException;
import io.moemesh.service.tls.TlsSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * The model stores no served model uses, at startup, as plain objects on temp directories: a change of block-tokens
 * (or model, or fingerprint version) opens a new store beside the old one, whose bytes would fill a volume sized for
 * one. The volume's usable space is given, so the tests need no small file system.
 */
class OrphanedStoresAtStartupTest {
    private static final String RULE = "ssd-bytes ÷ compaction-live-fraction + dram-bytes + segment-bytes per served "
            + "model";

    @TempDir
    Path ssd;

    private Path served;
    private Path oldBlockSize;
    private final ListAppender<ILoggingEvent> logged = new ListAppender<>();
    private final Logger logger = (Logger) LoggerFactory.getLogger(OrphanedStoresAtStartup.class);

    @BeforeEach
    void captureTheLog() {
        logged.start();
        logger.addAppender(logged);
    }

    @AfterEach
    void releaseTheLog() {
        logger.detachAppender(logged);
    }

    /** The warnings logged, formatted. */
    private List<String> warnings() {
        return logged.list.stream().filter(e -> e.getLevel() == ch.qos.logback.classic.Level.WARN)
                .map(ILoggingEvent::getFormattedMessage).toList();
    }

    /** The served store (block-tokens 32 now) and the store of block-tokens 16 before, of 1000 bytes. */
    private void storesAfterABlockSizeChange() throws IOException {
        served = Files.createDirectories(ssd.resolve("0123456789abcdef0123456789abcdef-b32"));
        Files.write(served.resolve("seg-0000000000000001.kvseg"), segment(100));
        oldBlockSize = Files.createDirectories(ssd.resolve("0123456789abcdef0123456789abcdef-b16"));
        Files.write(oldBlockSize.resolve("seg-0000000000000001.kvseg"), segment(1000));
    }

    /** Bytes that start as a segment file does. */
    private static byte[] segment(int bytes) {
        byte[] b = new byte[bytes];
        System.arraycopy("MMKVSEG1".getBytes(), 0, b, 0, 8);
        return b;
    }

    @Test
    void keep_whenDeletingTheOrphansWouldMakeTheRoom_refusesToStart_namingTheSettingTheFoldersAndTheBytes()
            throws IOException {
        storesAfterABlockSizeChange();

        // The served store holds 100 bytes and may come to hold 5000; 4000 usable: 900 short, and the old store's
        // 1000 bytes would make the room.
        assertThatThrownBy(() -> OrphanedStoresAtStartup.settle(ssd, Set.of(served), false, 5000, RULE, () -> 4000))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.kvcache.orphaned-stores"))
                .hasMessageStartingWith("moemesh.kvcache.orphaned-stores (MOEMESH_KVCACHE_ORPHANED_STORES) is keep")
                .hasMessageContaining(oldBlockSize + " (1000 bytes)")
                .hasMessageContaining("4000 bytes usable and the served stores hold 100, but they may come to hold "
                        + "5000 bytes (" + RULE + ")")
                .hasMessageContaining("without the 1000 bytes of those stores it would not")
                .hasMessageContaining("Set moemesh.kvcache.orphaned-stores=delete "
                        + "(MOEMESH_KVCACHE_ORPHANED_STORES=delete)")
                .hasMessageNotContaining(served.toString() + " (");
        assertThat(oldBlockSize.resolve("seg-0000000000000001.kvseg")).exists();
    }

    @Test
    void keep_withRoomForTheServedStores_keepsTheOrphans() throws IOException {
        storesAfterABlockSizeChange();

        assertThat(OrphanedStoresAtStartup.settle(ssd, Set.of(served), false, 5000, RULE, () -> 4900))
                .containsExactly(new Orphan(oldBlockSize, 1000));
        assertThat(oldBlockSize.resolve("seg-0000000000000001.kvseg")).exists();
        assertThat(warnings()).singleElement().asString().contains(oldBlockSize + ": a model store no served model "
                + "uses (1000 bytes");
    }

    /**
     * An empty store folder (a model started once, nothing put) is not what leaves a small volume (a laptop's, a CI
     * machine's) short of the footprint: the start goes on, warning of the volume as it would without the folder.
     */
    @Test
    void keep_anEmptyOrphan_onAVolumeSmallerThanTheFootprint_starts_warningThatTheVolumeIsSmall() throws IOException {
        served = Files.createDirectories(ssd.resolve("0123456789abcdef0123456789abcdef-b16"));
        Path otherModel = Files.createDirectories(ssd.resolve("fedcba9876543210fedcba9876543210-b16"));

        assertThat(OrphanedStoresAtStartup.settle(ssd, Set.of(served), false, 5000, RULE, () -> 10))
                .containsExactly(new Orphan(otherModel, 0));
        assertThat(otherModel).isDirectory();
        assertThat(warnings()).hasSize(2);
        assertThat(warnings().get(1)).contains(ssd + ": the volume has 10 bytes usable and the served stores hold 0, "
                + "but they may come to hold 5000 bytes (" + RULE + "): the volume is too small for them even "
                + "without the 0 bytes of the model stores no served model uses");
    }

    /** Nor is a store whose bytes, deleted, would still leave the volume short: the volume is what is small. */
    @Test
    void keep_anOrphanWhoseDeletionWouldNotMakeTheRoom_starts_warningThatTheVolumeIsSmall() throws IOException {
        storesAfterABlockSizeChange();

        // 10 usable + 100 held + the old store's 1000 is still short of 5000.
        assertThat(OrphanedStoresAtStartup.settle(ssd, Set.of(served), false, 5000, RULE, () -> 10))
                .containsExactly(new Orphan(oldBlockSize, 1000));
        assertThat(warnings()).last().asString().contains("the volume is too small for them even without the 1000 "
                + "bytes");
    }

    /** Only the other layout's store goes: never the served one, never a folder or file that is not a store. */
    @Test
    void delete_removesTheOrphanedStores_andNothingElse() throws IOException {
        storesAfterABlockSizeChange();
        Path lostAndFound = Files.createDirectories(ssd.resolve("lost+found"));
        Path unknown = Files.createDirectories(ssd.resolve("snapshots"));
        Files.writeString(unknown.resolve("seg-0000000000000001.kvseg"), "MMKVSEG1 an operator's copy");
        Path file = Files.writeString(ssd.resolve("README"), "operator's notes");

        assertThat(OrphanedStoresAtStartup.settle(ssd, Set.of(served), true, 5000, RULE, () -> 0)).isEmpty();

        assertThat(oldBlockSize).doesNotExist();
        assertThat(served.resolve("seg-0000000000000001.kvseg")).exists();
        assertThat(lostAndFound).isDirectory();
        assertThat(unknown.resolve("seg-0000000000000001.kvseg")).exists();
        assertThat(file).exists();
    }

    @Test
    void delete_ofAStoreFolderItMustNotDelete_whoseBytesLeaveTooLittleRoom_refusesToStart_sayingWhy()
            throws IOException {
        storesAfterABlockSizeChange();
        Files.writeString(oldBlockSize.resolve("keep-me.txt"), "not a store's file");

        assertThatThrownBy(() -> OrphanedStoresAtStartup.settle(ssd, Set.of(served), true, 5000, RULE, () -> 4000))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.kvcache.orphaned-stores"))
                .hasMessageStartingWith("moemesh.kvcache.orphaned-stores (MOEMESH_KVCACHE_ORPHANED_STORES) is delete")
                .hasMessageContaining(oldBlockSize + " (1018 bytes: it holds keep-me.txt, which is not a file of a "
                        + "store)")
                .hasMessageContaining("delete them yourself");
        assertThat(oldBlockSize.resolve("seg-0000000000000001.kvseg")).exists();
    }

    @Test
    void delete_ofAStoreFolderItMustNotDelete_onAVolumeTooSmallWithoutIt_starts_warningThatTheVolumeIsSmall()
            throws IOException {
        storesAfterABlockSizeChange();
        Files.writeString(oldBlockSize.resolve("keep-me.txt"), "not a store's file");

        assertThat(OrphanedStoresAtStartup.settle(ssd, Set.of(served), true, 5000, RULE, () -> 10))
                .containsExactly(new Orphan(oldBlockSize, 1018));
        assertThat(warnings()).hasSize(2);
        assertThat(warnings().get(0)).contains(oldBlockSize + ": a model store no served model uses (1018 bytes), not "
                + "deleted: it holds keep-me.txt");
        assertThat(warnings().get(1)).contains("the volume is too small for them even without the 1018 bytes");
    }

    @Test
    void noOrphans_askNothingOfTheVolume() throws IOException {
        served = Files.createDirectories(ssd.resolve("0123456789abcdef0123456789abcdef-b32"));

        assertThat(OrphanedStoresAtStartup.settle(ssd, Set.of(served), false, Long.MAX_VALUE, RULE, () -> {
            throw new AssertionError("the volume's space is asked only when a store is kept");
        })).isEmpty();
        assertThat(OrphanedStoresAtStartup.settle(ssd.resolve("absent"), Set.of(), false, 1, RULE, () -> 0)).isEmpty();
    }

    /** What the served stores may come to hold: the chart's volume check's sum. */
    @Test
    void footprint_isSsdBytesOverTheLiveFraction_plusDram_plusASegmentPerModel_orSsdBytesWithCompactionOff() {
        assertThat(OrphanedStoresAtStartup.footprintBytes(props(Duration.ofMinutes(1), "keep"), 2))
                .isEqualTo((1L << 20) * 2 + (1L << 20) + 2 * 65536);
        assertThat(OrphanedStoresAtStartup.footprintBytes(props(Duration.ZERO, "keep"), 1))
                .isEqualTo((1L << 20) + (1L << 20) + 65536);
        assertThat(OrphanedStoresAtStartup.footprintRule(props(Duration.ZERO, "keep"))).contains("compaction is off");
    }

    /**
     * The service's own startup with delete: the store of the block size before is gone before the served model's
     * tiers open, and the served one opens as usual.
     */
    @Test
    void open_withDelete_deletesTheStoreOfTheBlockSizeBefore_andOpensTheServedOne() throws IOException {
        Path before = Files.createDirectories(ssd.resolve(KvTestMesh.FINGERPRINT.hex() + "-b32"));
        Files.write(before.resolve("seg-0000000000000001.kvseg"), segment(4096));

        try (var models = KvCacheServiceConfiguration.open(props(Duration.ofMinutes(1), "delete"))) {
            assertThat(models.all()).hasSize(1);
        }
        assertThat(before).doesNotExist();
        assertThat(ssd.resolve(KvTestMesh.FINGERPRINT.hex() + "-b16")).isDirectory();
    }

    /** 1 MiB of DRAM and of SSD at block-tokens 16, live fraction 0.5, 64 KiB segments. */
    private KvCacheProperties props(Duration compactionPeriod, String orphanedStores) {
        return new KvCacheProperties(List.of(KvTestMesh.MODEL_DIR), 16, "127.0.0.1", 0, 1L << 20, ssd, 1L << 20,
                65536, FsyncPolicy.NEVER, Duration.ofSeconds(1), 1L << 20, 0.5, compactionPeriod, false, false,
                "lru", 16 << 20, Duration.ZERO, TlsSettings.plaintext(), null, null, 32, orphanedStores);
    }
}
