package io.moemesh.kvcache.tier;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OrphanedStoresTest {
    @TempDir
    Path ssd;

    @Test
    void storesNoServedModelOpens_areFoundWithTheirBytes_othersAndForeignFoldersAreNot() throws IOException {
        Path served = Files.createDirectories(ssd.resolve("0123456789abcdef0123456789abcdef-b16"));
        Path oldVersion = Files.createDirectories(ssd.resolve("fedcba9876543210fedcba9876543210-b16"));
        Path otherBlockSize = Files.createDirectories(ssd.resolve("0123456789abcdef0123456789abcdef-b32"));
        Files.createDirectories(ssd.resolve("lost+found"));
        Files.write(oldVersion.resolve("seg-0000000000000001.kvseg"), new byte[1000]);
        Files.write(otherBlockSize.resolve("seg-0000000000000001.kvseg"), new byte[24]);
        Files.write(served.resolve("seg-0000000000000001.kvseg"), new byte[7]);

        assertThat(OrphanedStores.find(ssd, Set.of(served))).containsExactly(
                new OrphanedStores.Orphan(otherBlockSize, 24), new OrphanedStores.Orphan(oldVersion, 1000));
    }

    @Test
    void aMissingSsdDirectory_hasNone() {
        assertThat(OrphanedStores.find(ssd.resolve("absent"), Set.of())).isEmpty();
    }

    /** Another service on the same SSD directory renames a *.tmp or compacts while the sizes are summed. */
    @Test
    void aFileGoneBetweenListingAndSizing_countsNothing_insteadOfFailingTheStartup() throws IOException {
        Path store = Files.createDirectories(ssd.resolve("fedcba9876543210fedcba9876543210-b16"));
        Files.write(store.resolve("seg-0000000000000001.kvseg"), new byte[1000]);
        Path tmp = Files.write(store.resolve("seg-0000000000000002.kvseg.tmp"), new byte[128]);

        List<Path> listed = OrphanedStores.filesIn(store);
        Files.delete(tmp);

        assertThat(listed).hasSize(2);
        assertThat(OrphanedStores.bytesOf(listed)).isEqualTo(1000);
    }

    @Test
    void aStoreGoneBeforeItIsWalked_hasNoFiles() throws IOException {
        assertThat(OrphanedStores.filesIn(ssd.resolve("fedcba9876543210fedcba9876543210-b16"))).isEmpty();
    }
}
