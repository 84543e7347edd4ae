package io.moemesh.kvcache.tier;

import static io.moemesh.kvcache.tier.TestBlocks.block;
import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.kvcache.policy.LruPolicy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
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

    /** A store as its tier leaves it: segments, a segment's tombstones (one block removed), after a close. */
    private Path storeWithSegments(String name) {
        Path store = ssd.resolve(name);
        try (SsdTier t = SsdTier.open(SsdTierTest.config(store), TestBlocks.LAYOUT, TestBlocks.MODEL,
                new LruPolicy())) {
            for (int i = 0; i < 6; i++) {
                t.put(block(i));
            }
            t.remove(TestBlocks.key(0));
        }
        return store;
    }

    private static List<String> names(Path dir) throws IOException {
        try (Stream<Path> list = Files.list(dir)) {
            return list.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void delete_removesAStoreFolder_withEveryFileItsTierWrites() throws IOException {
        Path store = storeWithSegments("fedcba9876543210fedcba9876543210-b4");
        Files.write(store.resolve("seg-0000000000000009.kvseg.tmp"), new byte[10]); // a creation cut short
        Files.write(store.resolve("seg-0000000000000008.kvseg.corrupt"), new byte[10]); // quarantined
        Files.write(store.resolve(".lock"), "123\n".getBytes()); // left by a killed holder
        assertThat(names(store)).contains("seg-0000000000000001.kvseg", "seg-0000000000000001.kvdead");

        assertThat(OrphanedStores.delete(store)).isEmpty();
        assertThat(store).doesNotExist();
        assertThat(names(ssd)).isEmpty();
    }

    /** Only what a tier writes is deleted: a folder that holds anything else is not a store of this service's. */
    @Test
    void delete_leavesAFolderHoldingAnythingNoStoreHas_untouched() throws IOException {
        Path withFile = storeWithSegments("0123456789abcdef0123456789abcdef-b4");
        Files.writeString(withFile.resolve("notes.txt"), "mine");
        Path withFolder = storeWithSegments("0123456789abcdef0123456789abcdef-b8");
        Files.createDirectories(withFolder.resolve("backup"));
        Path notASegment = Files.createDirectories(ssd.resolve("0123456789abcdef0123456789abcdef-b16"));
        Files.writeString(notASegment.resolve("seg-0000000000000001.kvseg"), "not a segment at all");
        List<String> before = names(withFile);

        assertThat(OrphanedStores.delete(withFile)).hasValueSatisfying(why -> assertThat(why).contains("notes.txt"));
        assertThat(OrphanedStores.delete(withFolder)).hasValueSatisfying(why -> assertThat(why).contains("backup"));
        assertThat(OrphanedStores.delete(notASegment))
                .hasValueSatisfying(why -> assertThat(why).contains("seg-0000000000000001.kvseg"));
        assertThat(names(withFile)).isEqualTo(before);
        assertThat(withFolder.resolve("backup")).isDirectory();
        assertThat(notASegment.resolve("seg-0000000000000001.kvseg")).exists();
    }

    /** A tier that has the store open (this process's here; another process's alike) keeps it: its lock is taken. */
    @Test
    void delete_leavesAStoreATierHasOpen() throws IOException {
        Path store = ssd.resolve("fedcba9876543210fedcba9876543210-b4");
        try (SsdTier open = SsdTier.open(SsdTierTest.config(store), TestBlocks.LAYOUT, TestBlocks.MODEL,
                new LruPolicy())) {
            open.put(block(1));
            assertThat(OrphanedStores.delete(store)).hasValueSatisfying(why -> assertThat(why).contains("is open"));
            assertThat(open.get(TestBlocks.key(1))).isPresent();
        }
        assertThat(names(store)).contains("seg-0000000000000001.kvseg");
    }

    /** A link named like a store is no folder the service made: neither it nor what it points to is deleted. */
    @Test
    void delete_neverFollowsALinkNamedLikeAStore() throws IOException {
        Path elsewhere = storeWithSegments("elsewhere");
        Path link = Files.createSymbolicLink(ssd.resolve("fedcba9876543210fedcba9876543210-b4"), elsewhere);
        List<String> before = names(elsewhere);

        assertThat(OrphanedStores.delete(link)).hasValueSatisfying(why -> assertThat(why).contains("not a directory"));
        assertThat(link).isSymbolicLink();
        assertThat(names(elsewhere)).isEqualTo(before);
    }
}
