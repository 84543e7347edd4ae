package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The single-writer lock of an SSD tier's directory: an exclusive {@link FileLock} on {@code <dir>/.lock}, held from
 * before the index rebuild until the tier is closed. Why: the segment files have one writer by design (segment ids
 * are numbered by the process, a new segment is renamed over its name atomically, the rebuild deletes unfinished
 * {@code *.tmp} files and truncates torn tails), so a second process on the same directory would silently replace
 * and cut the first one's segments. The kernel releases the lock when its holder dies (kill -9 included), so a
 * crash never leaves the directory locked; the file itself then stays, empty of meaning.
 *
 * <p>The file is deleted on {@link #close()}, before the lock is released, so a closed tier leaves its directory as
 * it found it. The directory itself may then go ({@link OrphanedStores#delete} removes an unused store's folder
 * after its lock is released), so {@link #acquire} makes it again when it finds it gone before it opens the file.
 * A file unlinked under a contender is why {@link #acquire} checks, once it holds the lock, that the path still
 * names the file it opened (its key before the open and after the lock are the same); otherwise it may have locked
 * an unlinked file while another opener created and locked a new one, and it tries again.
 *
 * <p>A FileLock is a POSIX record lock, held by the process: closing <em>any</em> descriptor of the file drops every
 * lock the process holds on it. So this JVM must never open a second descriptor on a {@code .lock} it holds (the
 * {@link OverlappingFileLockException} that tryLock would throw comes too late: closing that descriptor would release
 * the first tier's lock to other processes). {@link #HELD} records the lock files this JVM holds, by the
 * directory's real path, and is checked before the file is opened; a tier opened twice without a close is refused
 * there.
 */
final class DirectoryLock implements AutoCloseable {
    /** The lock file's name in the tier's directory (no segment pattern matches it). */
    static final String FILE = ".lock";
    /** Tries before giving up when the file keeps being replaced under us (each try is one open and one lock). */
    private static final int ATTEMPTS = 8;
    private static final Object NO_FILE_KEYS = new Object();
    /** The lock files (under their directory's real path) this JVM holds or is locking, each with its holder's token. */
    private static final ConcurrentHashMap<Path, Object> HELD = new ConcurrentHashMap<>();

    private final Path path;
    /** The key in {@link #HELD}, and this holder's token there. */
    private final Path heldKey;
    private final Object token;
    /** Holds the lock while it is open. */
    private final FileChannel channel;

    private DirectoryLock(Path path, Path heldKey, Object token, FileChannel channel) {
        this.path = path;
        this.heldKey = heldKey;
        this.token = token;
        this.channel = channel;
    }

    /**
     * Locks {@code dir} (created if missing) for this tier.
     *
     * @throws SsdDirectoryLockedException when another process, or another open tier of this JVM, holds it
     * @throws UncheckedIOException        when the lock file cannot be created or locked
     */
    static DirectoryLock acquire(Path dir) {
        return acquire(dir, () -> { });
    }

    /**
     * {@link #acquire(Path)}, running {@code beforeOpen} just before each open of the lock file: the moment another
     * process's {@link OrphanedStores#delete} may remove the folder made a moment before (its lock released, the
     * folder emptied); tests remove it there.
     */
    static DirectoryLock acquire(Path dir, Runnable beforeOpen) {
        Path path = dir.resolve(FILE);
        Object token = new Object();
        Path heldKey = null;
        boolean acquired = false;
        try {
            Path key = made(dir).resolve(FILE);
            if (HELD.putIfAbsent(key, token) != null) {
                throw locked(dir, path, "an SSD tier of this process that was not closed");
            }
            heldKey = key;
            for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
                Object before = fileKey(path);
                beforeOpen.run();
                FileChannel ch;
                try {
                    ch = FileChannel.open(path, Set.of(StandardOpenOption.CREATE, StandardOpenOption.READ,
                            StandardOpenOption.WRITE), OwnerOnly.file(dir));
                } catch (NoSuchFileException folderGone) {
                    // Another process deleted the store folder since it was made here (an orphaned store it found
                    // unlocked, OrphanedStores.delete): it is no one's now, so made again and locked as a new one.
                    OwnerOnly.createDirectories(dir);
                    continue;
                }
                FileLock lock;
                boolean inThisJvm = false;
                try {
                    lock = ch.tryLock();
                } catch (OverlappingFileLockException e) {
                    // Only a holder HELD does not know as this file gets here (the directory reached through a bind
                    // mount, or a lock taken outside this class); closing ch below then drops that holder's OS lock
                    // too, which no Java API can avoid once the file is open.
                    lock = null;
                    inThisJvm = true;
                } catch (IOException | RuntimeException e) {
                    ch.close();
                    throw e;
                }
                if (lock == null) {
                    String holder = inThisJvm ? "an SSD tier of this process that was not closed"
                            : "another process" + holder(ch);
                    ch.close();
                    throw locked(dir, path, holder);
                }
                if (before != null && before.equals(fileKey(path))) {
                    // Ours now: say who holds it, for the message of the next opener.
                    ch.truncate(0);
                    ch.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII)),
                            0);
                    acquired = true;
                    return new DirectoryLock(path, key, token, ch);
                }
                // Created just now (nothing to compare the path with yet), or unlinked by a closing holder while we
                // opened it: try again on the file the path names now.
                ch.close();
            }
            throw new IllegalStateException("the SSD directory lock " + path.toAbsolutePath() + " kept being "
                    + "replaced, or its directory removed, while it was being locked (" + ATTEMPTS + " tries)");
        } catch (IOException e) {
            throw new UncheckedIOException("locking the SSD directory " + dir.toAbsolutePath() + " (" + path.getFileName()
                    + ") failed", e);
        } finally {
            if (!acquired && heldKey != null) {
                HELD.remove(heldKey, token);
            }
        }
    }

    /**
     * {@code dir}, made if missing (0700: the segments in it hold every tenant's K/V), as its real path; made again
     * when it goes before its real path is read (as {@link #acquire} does before the open).
     */
    private static Path made(Path dir) throws IOException {
        for (int attempt = 1; ; attempt++) {
            OwnerOnly.createDirectories(dir);
            try {
                return dir.toRealPath();
            } catch (NoSuchFileException folderGone) {
                if (attempt == ATTEMPTS) {
                    throw folderGone;
                }
            }
        }
    }

    private static SsdDirectoryLockedException locked(Path dir, Path path, String holder) {
        return new SsdDirectoryLockedException("the SSD directory " + dir.toAbsolutePath()
                + " is in use by " + holder + " (it holds " + path.getFileName() + "): a directory has one "
                + "writer, or the two would overwrite each other's segment files; give each kvcache-service "
                + "its own directory, or stop the other one first");
    }

    /**
     * The file's identity (device and inode), null when there is no file. On a file system without file keys every
     * file compares equal: the replaced-file check is skipped there, the lock itself still holds.
     */
    private static Object fileKey(Path path) throws IOException {
        try {
            Object key = Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
            return key == null ? NO_FILE_KEYS : key;
        } catch (NoSuchFileException e) {
            return null;
        }
    }

    /** " (pid N)" as the holder wrote it into the file, or "" when it cannot be read. */
    private static String holder(FileChannel ch) {
        try {
            ByteBuffer b = ByteBuffer.allocate(32);
            ch.read(b, 0);
            String pid = new String(b.array(), 0, b.position(), StandardCharsets.US_ASCII).strip();
            return pid.matches("[0-9]+") ? " (pid " + pid + ")" : "";
        } catch (IOException e) {
            return "";
        }
    }

    /**
     * Deletes the lock file, then releases the lock (in that order: see the class comment), then lets this JVM lock
     * the directory again (last, so no second descriptor of this JVM is opened while the lock is still held).
     */
    @Override
    public void close() {
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            // The lock is released below all the same: a file left behind locks nothing.
        }
        try {
            channel.close(); // releases the lock
        } catch (IOException e) {
            // Closing a descriptor releases its locks whatever close reports.
        }
        HELD.remove(heldKey, token);
    }
}
