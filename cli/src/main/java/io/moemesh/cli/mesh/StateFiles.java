package io.moemesh.cli.mesh;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;

/**
 * The file operations {@code moemesh down} does in the state directory besides reading {@code mesh.json}: probing the
 * launch lock and deleting {@code mesh.json}. The real file system, or (tests) one that refuses writes as a read-only
 * mount does (EROFS: ext4 with {@code errors=remount-ro} after an I/O error, a full or failing volume, a snapshot),
 * where {@code down} must still stop the mesh: root ignores file permissions, so only a seam can stand in for it.
 */
interface StateFiles {
    StateFiles REAL = new StateFiles() {
        @Override
        public FileChannel open(Path file, OpenOption... options) throws IOException {
            return FileChannel.open(file, options);
        }

        @Override
        public void deleteIfExists(Path file) throws IOException {
            Files.deleteIfExists(file);
        }
    };

    FileChannel open(Path file, OpenOption... options) throws IOException;

    void deleteIfExists(Path file) throws IOException;
}
