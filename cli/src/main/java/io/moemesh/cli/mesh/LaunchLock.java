package io.moemesh.cli.mesh;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.Set;

/**
 * The exclusive lock of a state directory's launch: a {@link FileLock} on {@code <state-dir>/.lock}, held by the
 * process running {@link MeshLauncher#up} from before it looks for a running mesh until {@code mesh.json} records
 * everything it started (or, when the launch fails, until it stopped what it started). Why: in that window
 * (certificates, AOT cache training, the services' startup: tens of seconds) no {@code mesh.json} tells a second
 * {@code up} that a mesh is coming; two of them each issued their own CA, deleted each other's {@code mesh.json}, and
 * left JVMs running that no {@code down} knew of. The kernel releases the lock when its holder dies (kill -9
 * included), so a crashed launcher never leaves the directory locked; the file itself stays, empty of meaning.
 *
 * <p>A FileLock is a POSIX record lock held by the process: closing any descriptor of the file drops every lock the
 * process holds on it, and two launches in one JVM (tests, demo, benches) never see each other's lock. So this JVM's
 * own launches are recorded in {@link #HELD} and checked before the file is opened, under one monitor.
 */
final class LaunchLock implements AutoCloseable {
    static final String FILE = ".lock";
    /** The state directories (real paths) whose lock this JVM holds. */
    private static final Set<Path> HELD = new HashSet<>();

    private final Path key;
    private final FileChannel channel;

    private LaunchLock(Path key, FileChannel channel) {
        this.key = key;
        this.channel = channel;
    }

    /**
     * Takes the lock of {@code stateDir} (created owner-only when missing) without waiting.
     *
     * @throws IllegalArgumentException naming the directory when another launch holds it
     */
    static LaunchLock acquire(Path stateDir) {
        PrivateDirectories.create(stateDir);
        Path key = realPath(stateDir);
        synchronized (HELD) {
            if (HELD.contains(key)) {
                throw busy(stateDir);
            }
            FileChannel ch = null;
            try {
                ch = FileChannel.open(key.resolve(FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                FileLock lock = ch.tryLock();
                if (lock == null) {
                    throw busy(stateDir);
                }
                HELD.add(key);
                return new LaunchLock(key, ch);
            } catch (OverlappingFileLockException e) {
                throw busy(stateDir); // this JVM holds it under another name of the directory
            } catch (IOException e) {
                throw new UncheckedIOException(stateDir.resolve(FILE) + ": cannot lock the state directory", e);
            } finally {
                if (ch != null && !HELD.contains(key)) {
                    closeQuietly(ch);
                }
            }
        }
    }

    /**
     * Refuses a state directory a launch (of this process or another) is starting a mesh in: a tool that would touch
     * its files must wait for {@code mesh.json}, which {@link MeshState#refuseIfRunning} then checks.
     *
     * @throws IllegalArgumentException naming the directory when its lock is held
     */
    static void refuseIfHeld(Path stateDir) {
        Path key;
        try {
            key = stateDir.toRealPath();
        } catch (IOException e) {
            return; // no directory: nothing is being started there
        }
        synchronized (HELD) {
            if (HELD.contains(key)) {
                throw busy(stateDir);
            }
            // Never opened while this JVM holds it (above): closing this descriptor would drop that lock.
            try (FileChannel ch = FileChannel.open(key.resolve(FILE), StandardOpenOption.WRITE);
                 FileLock lock = ch.tryLock()) {
                if (lock == null) {
                    throw busy(stateDir);
                }
            } catch (OverlappingFileLockException e) {
                throw busy(stateDir);
            } catch (NoSuchFileException e) {
                // never launched here
            } catch (IOException e) {
                throw new UncheckedIOException(stateDir.resolve(FILE) + ": cannot check the state directory's lock", e);
            }
        }
    }

    private static IllegalArgumentException busy(Path stateDir) {
        return new IllegalArgumentException("another moemesh up is starting a mesh in " + stateDir + " (it holds "
                + stateDir.resolve(FILE) + "); once it is up, stop it with: moemesh down --state-dir " + stateDir
                + ", or use another --state-dir");
    }

    private static Path realPath(Path dir) {
        try {
            return dir.toRealPath();
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot resolve the state directory", e);
        }
    }

    private static void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // a descriptor that held no lock: nothing to lose
        }
    }

    /** Releases the lock (closing the descriptor releases it). */
    @Override
    public void close() {
        synchronized (HELD) {
            closeQuietly(channel);
            HELD.remove(key);
        }
    }
}
