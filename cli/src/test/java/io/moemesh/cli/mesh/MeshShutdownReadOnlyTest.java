package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.channels.FileChannel;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code down} on a state directory whose file system became read-only (ext4's errors=remount-ro after an I/O error, a
 * snapshot mount), when it is needed most. File permissions do not stop root, so the file system is played by a
 * {@link StateFiles} that refuses what a read-only mount refuses (EROFS); the processes are real.
 */
class MeshShutdownReadOnlyTest {
    /** Opens for reading only; every write, create or delete fails as on a read-only mount. */
    private static final StateFiles READ_ONLY = new StateFiles() {
        @Override
        public FileChannel open(Path file, OpenOption... options) throws IOException {
            if (!Set.of(options).equals(Set.of(StandardOpenOption.READ))) {
                throw new FileSystemException(file.toString(), null, "Read-only file system");
            }
            return FileChannel.open(file, options);
        }

        @Override
        public void deleteIfExists(Path file) throws IOException {
            throw new FileSystemException(file.toString(), null, "Read-only file system");
        }
    };

    @TempDir
    Path state;
    private Process service;
    private final StringWriter log = new StringWriter();

    @BeforeEach
    void meshOfOneService() throws IOException {
        service = new ProcessBuilder("sleep", "600").start();
        MeshState.Service expert = new MeshState.Service("expert-0", 0, "", 1, 2, "/l", List.of("sleep"), Map.of())
                .withProcess(service.toHandle());
        MeshStates.write(state, new MeshState("/m", 1, 1, "/p", List.of(expert), null));
        Files.writeString(state.resolve(LaunchLock.FILE), ""); // what every up leaves
    }

    @AfterEach
    void kill() {
        service.destroyForcibly();
    }

    /** The lock is probed without writing; mesh.json that cannot be deleted after the stop is a warning. */
    @Test
    void down_onAReadOnlyStateDirectory_stopsTheMesh_andWarnsThatMeshJsonStays() {
        assertThat(LaunchLock.held(state, READ_ONLY)).isFalse();

        List<String> report = MeshShutdown.down(state, Duration.ofSeconds(5), Duration.ZERO, new PrintWriter(log),
                READ_ONLY);

        assertThat(report).containsExactly("stopped expert-0 (pid " + service.pid() + ")");
        await().atMost(Duration.ofSeconds(10)).until(() -> !service.isAlive());
        assertThat(log.toString()).contains("moemesh down: warning: the mesh is stopped, but "
                + MeshState.file(state) + " cannot be deleted").contains("Read-only file system");
    }

    /** Even a read-only open of the lock fails (an I/O error): down says why and stops the mesh all the same. */
    @Test
    void down_whenTheLockCannotBeProbedAtAll_warnsWithTheCause_andStopsTheMesh() {
        StateFiles failing = new StateFiles() {
            @Override
            public FileChannel open(Path file, OpenOption... options) throws IOException {
                throw new FileSystemException(file.toString(), null, "Input/output error");
            }

            @Override
            public void deleteIfExists(Path file) throws IOException {
                StateFiles.REAL.deleteIfExists(file);
            }
        };

        List<String> report = MeshShutdown.down(state, Duration.ofSeconds(5), Duration.ZERO, new PrintWriter(log),
                failing);

        assertThat(report).containsExactly("stopped expert-0 (pid " + service.pid() + ")");
        await().atMost(Duration.ofSeconds(10)).until(() -> !service.isAlive());
        assertThat(log.toString()).contains("moemesh down: warning: " + state.resolve(LaunchLock.FILE)
                + ": cannot check the state directory's lock").contains("Input/output error");
        assertThat(MeshState.file(state)).doesNotExist();
    }
}
