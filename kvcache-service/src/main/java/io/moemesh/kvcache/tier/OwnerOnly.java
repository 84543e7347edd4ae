package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * Owner-only permissions for what the SSD tier creates: files 0600, directories 0700. Why: the segment files hold
 * every tenant's K/V, and the default umask (022) would leave them world-readable. Applied where the file system
 * supports POSIX permissions; elsewhere the files get the file system's defaults.
 */
final class OwnerOnly {
    private static final Set<PosixFilePermission> FILE = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> DIRECTORY = PosixFilePermissions.fromString("rwx------");
    private static final FileAttribute<?>[] NONE = new FileAttribute<?>[0];

    private OwnerOnly() {
    }

    /** The attribute that creates a file 0600 in {@code dir}'s file system (none without POSIX permissions). */
    static FileAttribute<?>[] file(Path dir) {
        return posix(dir) ? new FileAttribute<?>[] {PosixFilePermissions.asFileAttribute(FILE)} : NONE;
    }

    /** Creates {@code dir} and its missing parents 0700; an existing directory is left as it is. */
    static void createDirectories(Path dir) throws IOException {
        if (Files.isDirectory(dir)) {
            return;
        }
        if (posix(dir)) {
            Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(DIRECTORY));
        } else {
            Files.createDirectories(dir);
        }
    }

    /**
     * Takes group and other permissions off a file this tier wrote earlier (segments a build before owner-only
     * files created 0644). A failure is ignored: the file stays readable as it was, and serving goes on.
     */
    static void restrict(Path file) {
        if (!posix(file)) {
            return;
        }
        try {
            if (!Files.getPosixFilePermissions(file).equals(FILE)) {
                Files.setPosixFilePermissions(file, FILE);
            }
        } catch (IOException | UnsupportedOperationException | SecurityException e) {
            // Not ours to change (another owner, a read-only mount): left as it is.
        }
    }

    private static boolean posix(Path p) {
        return p.getFileSystem().supportedFileAttributeViews().contains("posix");
    }
}
