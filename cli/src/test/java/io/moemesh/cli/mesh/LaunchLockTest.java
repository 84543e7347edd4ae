package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The launch lock's tries: a lock taken for a moment (another process's {@link LaunchLock#held} probe, as a waiting
 * {@code down} makes every 100 ms) does not refuse a launch; one that stays taken does. The moment is played by a
 * {@link FileLock} this test takes on the lock file and frees between two tries.
 */
class LaunchLockTest {
    @TempDir
    Path state;

    /** A probe's lock on {@code <state>/.lock}; the launch's first try finds it taken. */
    private FileChannel probe(FileLock[] lock) throws IOException {
        Files.createDirectories(state);
        FileChannel ch = FileChannel.open(state.resolve(LaunchLock.FILE), StandardOpenOption.CREATE,
                StandardOpenOption.WRITE);
        lock[0] = ch.lock();
        return ch;
    }

    @Test
    void acquire_lockTakenForAMomentByAProbe_triesAgain_andTakesIt() throws IOException {
        FileLock[] lock = new FileLock[1];
        FileChannel probe = probe(lock);
        AtomicInteger pauses = new AtomicInteger();

        try (LaunchLock taken = LaunchLock.acquire(state, LaunchLock.ACQUIRE_TRIES, () -> {
            pauses.incrementAndGet();
            try {
                lock[0].release(); // the probe is done
                probe.close();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        })) {
            assertThat(pauses).hasValue(1);
            assertThat(LaunchLock.held(state)).isTrue();
            assertThatThrownBy(() -> LaunchLock.acquire(state)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("another moemesh up is starting a mesh in " + state);
        }
        assertThat(LaunchLock.held(state)).isFalse();
    }

    @Test
    void acquire_lockThatStaysTaken_isRefusedAfterItsTries_namingTheLockFile() throws IOException {
        FileLock[] lock = new FileLock[1];
        AtomicInteger pauses = new AtomicInteger();
        try (FileChannel ignored = probe(lock)) {
            assertThatThrownBy(() -> LaunchLock.acquire(state, LaunchLock.ACQUIRE_TRIES, pauses::incrementAndGet))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("another moemesh up is starting a mesh in " + state)
                    .hasMessageContaining(state.resolve(LaunchLock.FILE).toString());
            assertThat(pauses).hasValue(LaunchLock.ACQUIRE_TRIES - 1);
        }
    }

    /**
     * The probe is a shared lock on a read-only descriptor (it works on a read-only file system): it must still see
     * the exclusive lock a launch in another process holds, and stop seeing it when that process dies.
     */
    @Test
    void held_seesTheLockOfALaunchInAnotherProcess_throughItsReadOnlyProbe() throws Exception {
        Files.createDirectories(state);
        Path holder = Files.writeString(state.resolve("HoldLock.java"), """
                public class HoldLock {
                    public static void main(String[] args) throws Exception {
                        var ch = java.nio.channels.FileChannel.open(java.nio.file.Path.of(args[0]),
                                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE);
                        ch.lock();
                        System.out.println("locked");
                        System.out.flush();
                        System.in.read(); // holds the lock until the test closes this end (or kills it)
                    }
                }
                """);
        Process launch = new ProcessBuilder(MeshHome.javaBinary(), holder.toString(),
                state.resolve(LaunchLock.FILE).toString()).redirectErrorStream(true).start();
        try {
            assertThat(new java.io.BufferedReader(new java.io.InputStreamReader(launch.getInputStream())).readLine())
                    .isEqualTo("locked");
            assertThat(LaunchLock.held(state)).isTrue();
        } finally {
            launch.getOutputStream().close();
            launch.destroyForcibly();
            launch.waitFor();
        }
        assertThat(LaunchLock.held(state)).isFalse();
    }
}
