package io.moemesh.kvcache.tier;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A store's folder removed while a tier is locking it: another process's {@link OrphanedStores#delete} removes the
 * folder of a store it found unused right after releasing its lock, so a tier starting on that store in the same
 * moment may have made the folder (it existed) and then find it gone when it opens the lock file.
 */
class DirectoryLockTest {
    @TempDir
    Path ssd;

    /** Removes the (empty) store folder, as a delete finishing just then does. */
    private static void remove(Path store) {
        try {
            Files.delete(store);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void acquire_whenTheFolderIsRemovedBeforeTheLockFileOpens_makesItAgainAndLocksIt() {
        Path store = ssd.resolve("fedcba9876543210fedcba9876543210-b16");
        AtomicInteger opens = new AtomicInteger();

        try (DirectoryLock lock = DirectoryLock.acquire(store, () -> {
            if (opens.getAndIncrement() == 0) {
                remove(store);
            }
        })) {
            assertThat(store.resolve(DirectoryLock.FILE)).isRegularFile();
            assertThatThrownBy(() -> DirectoryLock.acquire(store)).isInstanceOf(SsdDirectoryLockedException.class);
        }
        assertThat(store).isDirectory();
        assertThat(store.resolve(DirectoryLock.FILE)).doesNotExist();
    }

    @Test
    void acquire_whenTheFolderKeepsBeingRemoved_givesUp_namingTheLock_andLeavesItLockable() {
        Path store = ssd.resolve("fedcba9876543210fedcba9876543210-b16");

        assertThatThrownBy(() -> DirectoryLock.acquire(store, () -> remove(store)))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(store.resolve(DirectoryLock.FILE).toAbsolutePath().toString())
                .hasMessageContaining("its directory removed");
        try (DirectoryLock lock = DirectoryLock.acquire(store)) {
            assertThat(store.resolve(DirectoryLock.FILE)).isRegularFile();
        }
    }
}
