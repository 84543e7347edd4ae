package io.moemesh.cli.mesh;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The AOT cache folders of earlier builds of the service jars, deleted once nothing can still need them. Each build
 * of a jar gets a folder of its own ({@link AotCache#key}), 100–200 MB (the extracted jar and its archive); without
 * this a developer's cache root only grew (7.5 GB after a few days of builds here).
 *
 * <p>A folder {@code <jar>-<key>} of a jar the mesh uses, other than the current build's, is deleted when all of
 * these hold: it was not used for {@link #UNUSED_FOR} (its lock file's time, which every use of a cache refreshes,
 * {@link #touch}), no live process names it on its command line (a mesh started from an earlier build still runs
 * from it: its JVMs open the extracted jars lazily), no service command recorded in the {@code mesh.json} of the
 * launching mesh or of a mesh whose supervisor runs names it ({@link #inUse}), and its lock is free (no launcher is
 * training it). Its archive goes first, so a folder a deletion left half done is never taken for a ready cache; the
 * next prune finishes it.
 */
final class StaleAotCaches {
    /** A cache used within this time stays (another checkout sharing the root, a launcher about to start from it). */
    static final Duration UNUSED_FOR = Duration.ofHours(1);
    private static final Pattern KEYED = Pattern.compile("(.+)-[0-9a-f]{16}");
    /** The CLI's main class, which the supervisor's command line runs ({@link MeshLauncher}). */
    private static final String MAIN_CLASS = "io.moemesh.cli.Main";

    private StaleAotCaches() {
    }

    /** Records a use of {@code folder}'s cache: its lock file's time is its last use. */
    static void touch(Path root, Path folder) {
        Path lock = AotCache.lockFile(root, folder);
        try {
            if (!Files.exists(lock)) {
                Files.createFile(lock);
            }
            Files.setLastModifiedTime(lock, FileTime.from(Instant.now()));
        } catch (IOException e) {
            // Only the pruning's age rule reads it: a folder whose use was not recorded stays until it is older.
        }
    }

    /** Whether any live process (of those this user may inspect) has {@code folder} in its command line. */
    static Predicate<Path> namedByLiveProcesses() {
        List<String> commands = ProcessHandle.allProcesses()
                .map(p -> p.info().commandLine().orElse(""))
                .filter(c -> !c.isEmpty())
                .toList();
        return folder -> commands.stream().anyMatch(c -> c.contains(folder.toString()));
    }

    /**
     * Whether {@code folder} may still be needed: named by a live process's command line
     * ({@link #namedByLiveProcesses}), or by a service command recorded in the mesh.json of {@code stateDir} or of
     * the state directory of any live supervisor ({@link #supervisedStateDir}). Why the recorded commands: a
     * supervised service that exited runs nowhere until its restart (RestartBackoff: up to 30 s later), and the
     * supervisor then starts it with its recorded command, from that folder; deleted, it would fail at every restart.
     * A mesh without a supervisor restarts nothing, so its live processes are all that can need a folder.
     */
    static Predicate<Path> inUse(Path stateDir) {
        Set<Path> stateDirs = new LinkedHashSet<>();
        stateDirs.add(stateDir);
        ProcessHandle.allProcesses().forEach(p -> p.info().arguments()
                .flatMap(args -> supervisedStateDir(List.of(args))).ifPresent(stateDirs::add));
        return namedByLiveProcesses().or(namedByRecordedMeshes(stateDirs));
    }

    /**
     * The state directory of a mesh supervisor's arguments ({@code ... io.moemesh.cli.Main supervise --state-dir DIR},
     * as {@link MeshLauncher} starts it); empty for any other process.
     */
    static Optional<Path> supervisedStateDir(List<String> args) {
        for (int i = 1; i + 2 < args.size(); i++) {
            if (args.get(i - 1).equals(MAIN_CLASS) && args.get(i).equals("supervise")
                    && args.get(i + 1).equals("--state-dir")) {
                return Optional.of(Path.of(args.get(i + 2)));
            }
        }
        return Optional.empty();
    }

    /**
     * Whether any service command (or the supervisor's) recorded in the mesh.json of one of {@code stateDirs} names
     * the folder, whether its process runs or not. A folder without a readable mesh.json names nothing.
     */
    static Predicate<Path> namedByRecordedMeshes(Collection<Path> stateDirs) {
        List<String> commands = new ArrayList<>();
        for (Path dir : stateDirs) {
            try {
                MeshState.read(dir).ifPresent(state -> {
                    state.services().forEach(svc -> commands.add(String.join(" ", svc.command())));
                    Optional.ofNullable(state.supervisor()).ifPresent(svc -> commands.add(String.join(" ", svc.command())));
                });
            } catch (RuntimeException e) {
                // not a mesh state file: it records no command
            }
        }
        return folder -> commands.stream().anyMatch(c -> c.contains(folder.toString()));
    }

    /**
     * Deletes the stale folders in {@code root} of the jars whose current folders are {@code current}.
     *
     * @param inUse whether a folder is still named by a live process
     * @return the folders deleted
     */
    static List<Path> prune(Path root, Collection<Path> current, Instant now, Predicate<Path> inUse) {
        List<String> jars = current.stream().map(StaleAotCaches::jarName).flatMap(Optional::stream).toList();
        List<Path> candidates;
        try (Stream<Path> s = Files.list(root)) {
            candidates = s.filter(Files::isDirectory)
                    .filter(d -> !current.contains(d))
                    .filter(d -> jarName(d).filter(jars::contains).isPresent())
                    .filter(d -> lastUse(root, d).filter(t -> t.plus(UNUSED_FOR).isBefore(now)).isPresent())
                    .sorted()
                    .toList();
        } catch (IOException e) {
            throw new UncheckedIOException(root + ": cannot list the AOT caches", e);
        }
        List<Path> deleted = new ArrayList<>();
        for (Path d : candidates) {
            if (!inUse.test(d) && deleteUnlessLocked(root, d)) {
                deleted.add(d);
            }
        }
        return deleted;
    }

    private static Optional<String> jarName(Path folder) {
        Matcher m = KEYED.matcher(folder.getFileName().toString());
        return m.matches() ? Optional.of(m.group(1)) : Optional.empty();
    }

    /**
     * The last use of {@code folder}'s cache; empty when it cannot be told (the folder went between the listing and
     * this, deleted by another launcher's prune, or cannot be read): such a folder is kept, and the others are still
     * pruned.
     */
    private static Optional<Instant> lastUse(Path root, Path folder) {
        Path lock = AotCache.lockFile(root, folder);
        try {
            return Optional.of(Files.getLastModifiedTime(Files.exists(lock) ? lock : folder).toInstant());
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    private static boolean deleteUnlessLocked(Path root, Path folder) {
        Path lock = AotCache.lockFile(root, folder);
        try (FileChannel ch = FileChannel.open(lock, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             FileLock held = ch.tryLock()) {
            if (held == null) {
                return false; // a launcher is training it
            }
            Files.deleteIfExists(folder.resolve(AotCache.ARCHIVE));
            AotCache.deleteTree(folder);
        } catch (IOException | OverlappingFileLockException e) {
            return false; // left for the next prune (OverlappingFileLockException: this JVM holds the lock)
        }
        try {
            Files.deleteIfExists(lock);
        } catch (IOException e) {
            // an empty lock file left behind: harmless
        }
        return true;
    }
}
