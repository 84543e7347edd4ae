package io.moemesh.cli.mesh;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;

/**
 * The exclusive lock of a state directory's launch: a {@link FileLock} on {@code <state-dir>/.lock}, held by the
 * process running {@link MeshLauncher#up} from before it looks for a running mesh until {@code mesh.json} records
 * everything it started (or, when the launch fails, until it stopped what it started). Why: in that window
 * (certificates, AOT cache training, the services' startup: tens of seconds) no {@code mesh.json} tells a second
 * {@code up} that a mesh is coming; two of them each issued their own CA, deleted each other's {@code mesh.json}, and
 * left JVMs running that no {@code down} knew of. The kernel releases the lock when its holder dies (kill -9
 * included), so a crashed launcher never leaves the directory locked; the file itself stays, empty of meaning.
 * {@code moemesh down} waits for the lock to be released before it reads {@code mesh.json} ({@link #awaitReleased}).
 *
 * <p>A FileLock is a POSIX record lock held by the process: closing any descriptor of the file drops every lock the
 * process holds on it, and two launches in one JVM (tests, demo, benches) never see each other's lock. So this JVM's
 * own launches are recorded in {@link #HELD} and checked before the file is opened, under one monitor.
 */
final class LaunchLock implements AutoCloseable {
    static final String FILE = ".lock";
    /** The marker of a {@code down} waiting for the launch to end ({@link #awaitReleased}). */
    static final String DOWN_WAITING = ".down-waiting";
    private static final Duration POLL = Duration.ofMillis(100);
    /** How often {@link #acquire(Path)} tries a lock it finds taken, {@link #ACQUIRE_RETRY} apart, before refusing. */
    static final int ACQUIRE_TRIES = 3;
    /** The pause between two tries: three span 300 ms, far longer than a probe holds the lock (microseconds). */
    static final Duration ACQUIRE_RETRY = Duration.ofMillis(150);
    /** The state directories (real paths) whose lock this JVM holds. */
    private static final Set<Path> HELD = new HashSet<>();

    private final Path key;
    private final FileChannel channel;

    private LaunchLock(Path key, FileChannel channel) {
        this.key = key;
        this.channel = channel;
    }

    /**
     * Takes the lock of {@code stateDir} (created owner-only when missing), trying {@value #ACQUIRE_TRIES} times
     * {@link #ACQUIRE_RETRY} apart: another process's {@link #held} (a {@code down} waiting in {@link #awaitReleased}
     * probes every 100 ms) takes the lock for a moment, and an {@code up} starting at that instant would otherwise
     * be refused as if another launch held it.
     *
     * @throws IllegalArgumentException naming the directory when another launch holds it
     */
    static LaunchLock acquire(Path stateDir) {
        return acquire(stateDir, ACQUIRE_TRIES, LaunchLock::pauseBeforeRetry);
    }

    /**
     * {@link #acquire(Path)} with its tries and what runs between two of them (tests: what frees the lock). A lock
     * this JVM's own launch holds is refused at once: no probe of this JVM takes it ({@link #held} runs under the same
     * monitor), so it is not freed in a moment.
     */
    static LaunchLock acquire(Path stateDir, int tries, Runnable betweenTries) {
        PrivateDirectories.create(stateDir);
        Path key = realPath(stateDir);
        for (int tried = 1; ; tried++) {
            LaunchLock lock = tryAcquire(stateDir, key);
            if (lock != null) {
                return lock;
            }
            if (tried >= tries) {
                throw busy(stateDir);
            }
            betweenTries.run();
        }
    }

    /** The lock, or null when another process (or this JVM under another name of the directory) holds it. */
    private static LaunchLock tryAcquire(Path stateDir, Path key) {
        synchronized (HELD) {
            if (HELD.contains(key)) {
                throw busy(stateDir);
            }
            FileChannel ch = null;
            try {
                ch = FileChannel.open(key.resolve(FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                FileLock lock = ch.tryLock();
                if (lock == null) {
                    return null;
                }
                HELD.add(key);
                return new LaunchLock(key, ch);
            } catch (OverlappingFileLockException e) {
                return null; // this JVM holds it under another name of the directory
            } catch (IOException e) {
                throw new UncheckedIOException(stateDir.resolve(FILE) + ": cannot lock the state directory", e);
            } finally {
                if (ch != null && !HELD.contains(key)) {
                    closeQuietly(ch);
                }
            }
        }
    }

    private static void pauseBeforeRetry() {
        try {
            Thread.sleep(ACQUIRE_RETRY);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt(); // the remaining tries run at once, then refuse
        }
    }

    /**
     * Refuses a state directory a launch (of this process or another) is starting a mesh in: a tool that would touch
     * its files must wait for {@code mesh.json}, which {@link MeshState#refuseIfRunning} then checks.
     *
     * @throws IllegalArgumentException naming the directory when its lock is held
     */
    static void refuseIfHeld(Path stateDir) {
        if (held(stateDir)) {
            throw busy(stateDir);
        }
    }

    /** Whether a launch (of this process or another) holds the lock of {@code stateDir} now. */
    static boolean held(Path stateDir) {
        return held(stateDir, StateFiles.REAL);
    }

    /**
     * {@link #held(Path)} with {@code .lock} opened by {@code files}. The probe is a shared lock on a read-only
     * descriptor: it conflicts with the launch's exclusive lock all the same (fcntl(2): a read lock fails while another
     * process holds a write lock), and it works where the state directory's file system has become read-only, which
     * an open for writing does not (EROFS): {@code down} then could not even tell whether a launch runs.
     *
     * @throws java.io.UncheckedIOException naming the lock file and the cause when even that probe fails
     */
    static boolean held(Path stateDir, StateFiles files) {
        Path key;
        try {
            key = stateDir.toRealPath();
        } catch (IOException e) {
            return false; // no directory: nothing is being started there
        }
        synchronized (HELD) {
            if (HELD.contains(key)) {
                return true;
            }
            // Never opened while this JVM holds it (above): closing this descriptor would drop that lock.
            try (FileChannel ch = files.open(key.resolve(FILE), StandardOpenOption.READ);
                 FileLock lock = ch.tryLock(0, Long.MAX_VALUE, true)) {
                return lock == null;
            } catch (OverlappingFileLockException e) {
                return true;
            } catch (NoSuchFileException e) {
                return false; // never launched here
            } catch (IOException e) {
                throw new UncheckedIOException(stateDir.resolve(FILE) + ": cannot check the state directory's lock ("
                        + e.getMessage() + ")", e);
            }
        }
    }

    /**
     * Waits until no launch holds the lock of {@code stateDir}, at most {@code wait}; true once none does (at once when
     * none did). While it waits, {@code <state-dir>/}{@value #DOWN_WAITING} names this process, so the launch can
     * tell that its mesh is stopped as soon as it is up ({@link #downWaiting}). {@code moemesh down} waits so: stopping
     * the processes of a launch under way would fail it with a misleading error, and before it recorded any, down
     * found nothing to stop and the mesh came up anyway.
     */
    static boolean awaitReleased(Path stateDir, Duration wait) {
        if (!held(stateDir)) {
            return true;
        }
        if (!wait.isPositive()) {
            return false; // no wait: no marker, or the launch would say a down stops its mesh that never will
        }
        Path marker = stateDir.resolve(DOWN_WAITING);
        String me = processTag(ProcessHandle.current());
        try {
            Files.writeString(marker, me);
        } catch (IOException e) {
            // only the launch's message depends on it: the wait itself does not
        }
        try {
            // The monotonic clock: a wall-clock step (NTP, a suspended laptop) would shorten or stretch the wait.
            long deadline = System.nanoTime() + wait.toNanos();
            while (held(stateDir)) {
                if (System.nanoTime() - deadline >= 0) {
                    return false;
                }
                try {
                    Thread.sleep(POLL);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return !held(stateDir);
                }
            }
            return true;
        } finally {
            try {
                // unless a second down waiting meanwhile wrote its own: it removes that one when its wait ends
                if (me.equals(Files.readString(marker))) {
                    Files.delete(marker);
                }
            } catch (IOException e) {
                // gone already, or cannot be read: a marker of a process that ended is ignored (downWaiting)
            }
        }
    }

    /**
     * The pid of a {@code moemesh down} waiting (in {@link #awaitReleased}) for the launch in {@code stateDir} to end,
     * if one is: it stops the mesh once the launch releases the lock.
     */
    static Optional<Long> downWaiting(Path stateDir) {
        try {
            String tag = Files.readString(stateDir.resolve(DOWN_WAITING));
            long pid = Long.parseLong(tag.split(" ", 2)[0]);
            // a marker left by a down that was killed, or whose pid now belongs to another process, names nobody
            return ProcessHandle.of(pid).filter(p -> processTag(p).equals(tag)).map(ProcessHandle::pid);
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }

    /** A process as the marker names it: its pid and start (a recycled pid never matches; {@link ProcessStart}). */
    private static String processTag(ProcessHandle p) {
        return p.pid() + " " + ProcessStart.SYSTEM.of(p).tag();
    }

    private static IllegalArgumentException busy(Path stateDir) {
        return new IllegalArgumentException("another moemesh up is starting a mesh in " + stateDir + " (it holds "
                + stateDir.resolve(FILE) + "); once it is up, stop it with: moemesh down "
                + StateDirOption.argument(stateDir)
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
