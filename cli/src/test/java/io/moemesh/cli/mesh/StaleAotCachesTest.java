package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.AbstractSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StaleAotCachesTest {
    private static final Instant NOW = Instant.parse("2026-12-06T12:00:00Z");

    @TempDir
    Path root;

    @Test
    void prune_deletesOnlyEarlierBuildsOfTheSameJars_unusedForAnHour_andNamedByNoProcess() throws IOException {
        Path current = cache("moemesh-gateway-00000000000000aa", Duration.ofDays(3));
        Path old = cache("moemesh-gateway-00000000000000bb", Duration.ofHours(2));
        Path recent = cache("moemesh-gateway-00000000000000cc", Duration.ofMinutes(10));
        Path running = cache("moemesh-gateway-00000000000000dd", Duration.ofDays(1));
        Path otherJar = cache("moemesh-router-service-exec-00000000000000ee", Duration.ofDays(1));
        Path notACache = Files.createDirectories(root.resolve("notes"));

        List<Path> deleted = StaleAotCaches.prune(root, Set.of(current), NOW, running::equals);

        assertThat(deleted).containsExactly(old);
        assertThat(old).doesNotExist();
        assertThat(root.resolve(old.getFileName() + ".lock")).doesNotExist();
        assertThat(List.of(current, recent, running, otherJar, notACache)).allSatisfy(d -> assertThat(d).isDirectory());
        assertThat(current.resolve(AotCache.ARCHIVE)).exists();
    }

    @Test
    void prune_keepsAFolderWhoseLockIsHeld_byATrainingLauncher() throws IOException {
        Path current = cache("moemesh-gateway-00000000000000aa", Duration.ZERO);
        Path training = cache("moemesh-gateway-00000000000000bb", Duration.ofHours(5));
        try (FileChannel ch = FileChannel.open(root.resolve(training.getFileName() + ".lock"), StandardOpenOption.WRITE);
             FileLock ignored = ch.lock()) {
            assertThat(StaleAotCaches.prune(root, Set.of(current), NOW, d -> false)).isEmpty();
        }
        assertThat(training.resolve(AotCache.ARCHIVE)).exists();
        assertThat(StaleAotCaches.prune(root, Set.of(current), NOW, d -> false)).containsExactly(training);
    }

    /**
     * A folder that goes between the listing and its time check (two launchers pruning at once: the other deleted
     * it) has no last use to tell: it is passed by, and the other stale folders still go. Its time read as "never"
     * overflowed the age rule, and the whole prune failed.
     */
    @Test
    void prune_aFolderGoneBetweenTheListingAndItsTimeCheck_isPassedBy_theOtherStaleOnesStillGo() throws IOException {
        Path current = cache("moemesh-gateway-00000000000000aa", Duration.ZERO);
        Path gone = cache("moemesh-gateway-00000000000000bb", Duration.ofDays(2));
        Path old = cache("moemesh-gateway-00000000000000cc", Duration.ofDays(2));
        // The listing asks the set of current folders about each folder just before its time check: the other
        // launcher's prune deletes this one (the folder, then its lock file) right then.
        Set<Path> currentFolders = new AbstractSet<>() {
            @Override
            public boolean contains(Object o) {
                if (gone.equals(o)) {
                    try {
                        AotCache.deleteTree(gone);
                        Files.delete(AotCache.lockFile(root, gone));
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                }
                return current.equals(o);
            }

            @Override
            public Iterator<Path> iterator() {
                return List.of(current).iterator();
            }

            @Override
            public int size() {
                return 1;
            }
        };

        assertThat(StaleAotCaches.prune(root, currentFolders, NOW, d -> false)).containsExactly(old);
        assertThat(old).doesNotExist();
        assertThat(gone).doesNotExist();
        assertThat(current.resolve(AotCache.ARCHIVE)).exists();
    }

    @Test
    void touch_marksAUse_soTheFolderIsKeptForAnotherHour() throws IOException {
        Path current = cache("moemesh-gateway-00000000000000aa", Duration.ZERO);
        Path other = cache("moemesh-gateway-00000000000000bb", Duration.ofDays(2));
        Files.delete(root.resolve(other.getFileName() + ".lock"));

        StaleAotCaches.touch(root, other);

        assertThat(StaleAotCaches.prune(root, Set.of(current), Instant.now(), d -> false)).isEmpty();
        assertThat(StaleAotCaches.prune(root, Set.of(current), Instant.now().plus(Duration.ofMinutes(61)), d -> false))
                .containsExactly(other);
    }

    @Test
    void namedByLiveProcesses_seesThisJvmsOwnCommandLine() {
        Path javaHome = Path.of(System.getProperty("java.home"));
        assertThat(StaleAotCaches.namedByLiveProcesses().test(javaHome)).isTrue();
        assertThat(StaleAotCaches.namedByLiveProcesses().test(root.resolve("moemesh-gateway-00000000000000aa"))).isFalse();
    }

    /**
     * A supervised service that exited runs nowhere until the supervisor restarts it (up to 30 s later) with its
     * recorded command: the folder that command names stays while the mesh is recorded, and goes once it is not.
     */
    @Test
    void prune_keepsAFolderARecordedMeshsCommandNames_whileItsProcessIsDead() throws IOException {
        Path current = cache("moemesh-gateway-00000000000000aa", Duration.ZERO);
        Path old = cache("moemesh-gateway-00000000000000bb", Duration.ofDays(2));
        Path stateDir = root.resolve("state"); // not a cache folder: prune passes it by
        // pid 2^31 - 1: no live process
        MeshState.Service gateway = new MeshState.Service("gateway", Integer.MAX_VALUE, "", 1, 2,
                stateDir.resolve("logs/gateway.log").toString(), List.of("java", "-XX:AOTCache=" + old.resolve(
                AotCache.ARCHIVE), "-jar", old.resolve(AotCache.EXTRACTED).resolve("moemesh-gateway.jar").toString()),
                java.util.Map.of());
        MeshStates.write(stateDir, new MeshState("/m", 1, 1, "/m/placement.json", List.of(), gateway));
        assertThat(gateway.process()).isEmpty();

        assertThat(StaleAotCaches.prune(root, Set.of(current), NOW, StaleAotCaches.inUse(stateDir))).isEmpty();
        assertThat(old.resolve(AotCache.ARCHIVE)).exists();

        Files.delete(MeshState.file(stateDir)); // down
        assertThat(StaleAotCaches.prune(root, Set.of(current), NOW, StaleAotCaches.inUse(stateDir)))
                .containsExactly(old);
    }

    /** Any running supervisor's mesh counts, wherever its state directory is: its command line names it. */
    @Test
    void supervisedStateDir_isReadFromTheSupervisorsCommandLine_asTheLauncherStartsIt() {
        Path stateDir = root.resolve("elsewhere");
        MeshSpec spec = new MeshSpec(root.resolve("model"), 1, 1, stateDir, "64m", Duration.ofSeconds(1),
                new MeshHome(root), List.of(), MeshSpec.RestartPolicy.ALWAYS);
        List<String> command = MeshLauncher.supervisor(spec, "java").command();
        assertThat(StaleAotCaches.supervisedStateDir(command.subList(1, command.size()))).contains(stateDir);
        assertThat(StaleAotCaches.supervisedStateDir(List.of("-jar", "x.jar", "--state-dir", "/tmp"))).isEmpty();
    }

    /** A cache folder (archive, extracted jar) whose lock file was last touched {@code age} before NOW. */
    private Path cache(String name, Duration age) throws IOException {
        Path d = Files.createDirectories(root.resolve(name));
        Files.writeString(d.resolve(AotCache.ARCHIVE), "archive");
        Files.createDirectories(d.resolve(AotCache.EXTRACTED).resolve("lib"));
        Files.writeString(d.resolve(AotCache.EXTRACTED).resolve("lib").resolve("a.jar"), "jar");
        Path lock = Files.writeString(root.resolve(name + ".lock"), "");
        Files.setLastModifiedTime(lock, FileTime.from(NOW.minus(age)));
        return d;
    }
}
