package io.moemesh.gateway.auth;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * A directory laid out as the kubelet lays out a Secret volume (its AtomicWriter): each version of the Secret in a
 * timestamped directory {@code ..<ts>}, the symlink {@code ..data} to the current one, and each key a symlink
 * {@code <key> -> ..data/<key>}. An update writes a new directory and renames a new {@code ..data} link over the old
 * one, one atomic step: a reader sees the old file or the new, never a mix.
 */
final class KubeletSecretVolume {
    private final Path mount;
    private int version;

    KubeletSecretVolume(Path mount) {
        this.mount = mount;
    }

    /** The path a pod reads the key {@code key} at (through its {@code ..data} symlink). */
    Path file(String key) {
        return mount.resolve(key);
    }

    /** Projects a new version of the Secret holding only {@code key} with {@code content}. */
    void project(String key, String content) throws IOException {
        Path dir = Files.createDirectory(mount.resolve("..2026_01_01_00_00_0" + (++version)));
        Files.writeString(dir.resolve(key), content);
        swapDataTo(dir);
        if (!Files.exists(mount.resolve(key), LinkOption.NOFOLLOW_LINKS)) {
            Files.createSymbolicLink(mount.resolve(key), Path.of("..data", key));
        }
    }

    /** Projects a version of the Secret without {@code key}: its symlink then dangles, as when the key is removed. */
    void projectWithout(String key) throws IOException {
        swapDataTo(Files.createDirectory(mount.resolve("..2026_01_01_00_00_0" + (++version))));
    }

    private void swapDataTo(Path dir) throws IOException {
        Path tmp = mount.resolve("..data_tmp");
        Files.deleteIfExists(tmp);
        Files.createSymbolicLink(tmp, dir.getFileName());
        Files.move(tmp, mount.resolve("..data"), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
