package io.moemesh.kvcache.tier;

import java.nio.file.Path;

/**
 * Run in a separate JVM by {@link KillNineTest}: tries to lock the directory given as the argument and prints
 * "refused" or "acquired", so a test can see whether another process's lock is held at the OS level.
 */
public final class DirectoryLockProbe {
    private DirectoryLockProbe() {
    }

    public static void main(String[] args) {
        try (DirectoryLock lock = DirectoryLock.acquire(Path.of(args[0]))) {
            System.out.println("acquired");
        } catch (SsdDirectoryLockedException e) {
            System.out.println("refused");
        }
    }
}
