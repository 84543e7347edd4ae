package io.moemesh.kvcache.tier;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.kvcache.policy.LruPolicy;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * kill -9 during heavy writes: a forked JVM writes blocks and reports each acknowledged one; it is
 * killed with destroyForcibly (SIGKILL) mid-stream. After reopening, every block it reported is there with its
 * exact bytes, and every block that is served is correct (nothing torn or corrupt).
 */
class KillNineTest {
    @TempDir
    Path dir;

    /**
     * Under every fsync policy: a put's record is written with system calls before it returns, so a killed process
     * loses nothing it acknowledged (forcing only matters for power loss and OS crashes).
     */
    @ParameterizedTest
    @EnumSource(FsyncPolicy.class)
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void afterKill9_everyAcknowledgedBlockIsPresentAndCorrect_andNothingPartialIsServed(FsyncPolicy fsync)
            throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(java.toString(), "-cp", System.getProperty("java.class.path"),
                KillNineWriter.class.getName(), dir.toString(), fsync.name())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        long reported = -1;
        try (BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(),
                StandardCharsets.UTF_8))) {
            String line;
            while ((line = out.readLine()) != null) {
                if (line.startsWith("durable ")) {
                    reported = Long.parseLong(line.substring(8));
                    if (reported == 150) {
                        // SIGKILL, no shutdown hooks, no close. Through the handle: Process.destroyForcibly would also close
                        // our end of the pipe, and the lines already in it are still to be read.
                        p.toHandle().destroyForcibly();
                    }
                }
            }
        } finally {
            p.destroyForcibly();
            p.waitFor();
        }
        assertThat(reported).isGreaterThanOrEqualTo(150);
        try (SsdTier t = SsdTier.open(KillNineWriter.config(dir, fsync), KillNineWriter.LAYOUT, TestBlocks.MODEL,
                new LruPolicy())) {
            for (long i = 0; i <= reported; i++) {
                long n = i;
                assertThat(t.get(TestBlocks.key(i))).as("reported block %d", i).hasValueSatisfying(
                        b -> assertThat(b.sameContent(TestBlocks.block(n, KillNineWriter.LAYOUT))).isTrue());
            }
            // At most the one put in flight may be there beyond what was reported, and whole if at all.
            for (long i = reported + 1; i <= reported + 50; i++) {
                long n = i;
                t.get(TestBlocks.key(i)).ifPresent(
                        b -> assertThat(b.sameContent(TestBlocks.block(n, KillNineWriter.LAYOUT))).isTrue());
            }
            assertThat(t.blockCount()).isBetween(reported + 1, reported + 2);
            assertThat(t.stats().checksumFailures()).isZero();
        }
    }

    /**
     * Two processes on one directory would number their segments on their own and overwrite each other's files: the
     * directory of a live writer is refused, naming it and the writer's pid; once the writer is killed (no close, its
     * lock file left behind) the kernel has dropped its lock and the directory opens.
     */
    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aDirectoryAnotherProcessWrites_isRefusedNamingItAndThePid_andOpensOnceThatProcessIsKilled() throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(java.toString(), "-cp", System.getProperty("java.class.path"),
                KillNineWriter.class.getName(), dir.toString(), FsyncPolicy.NEVER.name())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        try (BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(),
                StandardCharsets.UTF_8))) {
            String line;
            do {
                line = out.readLine();
            } while (line != null && !line.startsWith("durable "));
            assertThat(line).as("the writer's first put").isNotNull(); // it holds the directory now

            assertThatThrownBy(() -> SsdTier.open(KillNineWriter.config(dir, FsyncPolicy.NEVER), KillNineWriter.LAYOUT,
                    TestBlocks.MODEL, new LruPolicy()).close())
                    .isInstanceOf(SsdDirectoryLockedException.class)
                    .hasMessageContaining("the SSD directory " + dir.toAbsolutePath() + " is in use by another process "
                            + "(pid " + p.pid() + ")");
        } finally {
            p.destroyForcibly();
            p.waitFor();
        }
        assertThat(dir.resolve(".lock")).as("left by the killed writer").exists();
        try (SsdTier t = SsdTier.open(KillNineWriter.config(dir, FsyncPolicy.NEVER), KillNineWriter.LAYOUT,
                TestBlocks.MODEL, new LruPolicy())) {
            assertThat(t.get(TestBlocks.key(0))).isPresent();
        }
    }

    /**
     * The lock is the process's (POSIX record locks): closing any descriptor of the lock file drops it. A second open
     * of a directory this JVM holds is refused before it opens one, so the first tier still keeps other processes
     * out afterwards.
     */
    @Test
    @Timeout(value = 3, unit = TimeUnit.MINUTES)
    void aSecondOpenInThisProcess_isRefused_andTheFirstTierStillLocksOutOtherProcesses() throws Exception {
        try (SsdTier first = SsdTier.open(KillNineWriter.config(dir, FsyncPolicy.NEVER), KillNineWriter.LAYOUT,
                TestBlocks.MODEL, new LruPolicy())) {
            assertThatThrownBy(() -> SsdTier.open(KillNineWriter.config(dir, FsyncPolicy.NEVER), KillNineWriter.LAYOUT,
                    TestBlocks.MODEL, new LruPolicy()).close())
                    .isInstanceOf(SsdDirectoryLockedException.class)
                    .hasMessageContaining("an SSD tier of this process that was not closed");

            assertThat(probe()).as("another process, while the first tier is open").isEqualTo("refused");
        }
        assertThat(probe()).as("another process, once the first tier is closed").isEqualTo("acquired");
    }

    private String probe() throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(java.toString(), "-cp", System.getProperty("java.class.path"),
                DirectoryLockProbe.class.getName(), dir.toString())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        try (BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(),
                StandardCharsets.UTF_8))) {
            return out.readLine();
        } finally {
            p.waitFor();
        }
    }
}
