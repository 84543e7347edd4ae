package io.moemesh.kvcache.tier;

/**
 * Another tier holds the SSD directory's lock ({@link DirectoryLock}): another process (or, in this JVM, a tier not
 * yet closed) serves the same segment files. Opening is refused rather than sharing them: two writers would each
 * number their segments on their own and overwrite each other's files. A state that forbids the call:
 * FAILED_PRECONDITION.
 */
public final class SsdDirectoryLockedException extends IllegalStateException {
    public SsdDirectoryLockedException(String message) {
        super(message);
    }
}
