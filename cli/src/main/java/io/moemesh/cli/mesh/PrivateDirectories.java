package io.moemesh.cli.mesh;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * Directories a mesh's state lives in, created owner-only (0700) where the file system has POSIX permissions: the
 * state directory holds every tenant's K/V ({@code kvcache/}, the SSD tier), the mesh's CA key ({@code tls/}), the
 * API keys ({@code secrets/}) and the services' logs, none of which another user of the host may read. Created with
 * the mode, never chmod-ed after: there is no moment at which a new directory is open. A directory that exists is
 * left as it is (the caller's own, or an earlier mesh's: {@code --state-dir} may name a directory the user made).
 */
final class PrivateDirectories {
    private PrivateDirectories() {
    }

    /**
     * Creates {@code dir} and every missing parent with owner-only permissions (plain directories where the file
     * system has no POSIX permissions); nothing when it is a directory already.
     *
     * @throws UncheckedIOException naming the directory when it cannot be created
     */
    static Path create(Path dir) {
        if (Files.isDirectory(dir)) {
            return dir;
        }
        try {
            if (dir.getFileSystem().supportedFileAttributeViews().contains("posix")) {
                Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString(
                        "rwx------")));
            } else {
                Files.createDirectories(dir);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot create the directory", e);
        }
        return dir;
    }
}
