package io.moemesh.cli.mesh;

import io.moemesh.service.grpc.InstanceEndpoint;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Where a local mesh's domain sockets go: {@code <state-dir>/sockets/}, unless the longest socket path there would
 * not fit {@code sun_path} ({@link InstanceEndpoint#MAX_SOCKET_PATH_BYTES} bytes; a deep state directory, e.g. a
 * test's or a CI workspace's): then a short directory of its own, {@code /tmp/moemesh-<uid>-<hash of the state
 * dir>/}, the same one for the same state directory (so a restarted service finds its path again), said on the
 * log. Either directory is 0700 and must be owned by this user: a socket's access control is its directory's, and
 * a directory someone else created under /tmp is refused rather than used. {@code moemesh down} removes the short
 * directory again when it is empty ({@link #removeEmptyFallback}).
 */
public final class SocketDirectory {
    static final Path SHORT_ROOT = Path.of("/tmp");
    private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rwx------");

    private SocketDirectory() {
    }

    /** {@link #choose(Path, List, Path, PrintWriter)} with the short directory under /tmp. */
    public static Path choose(Path stateDir, List<String> socketNames, PrintWriter log) {
        return choose(stateDir, socketNames, SHORT_ROOT, log);
    }

    /**
     * Creates (if needed) and returns the directory for the sockets {@code <name>.sock} of {@code socketNames}.
     *
     * @throws IllegalArgumentException when even the short directory cannot hold them, or it exists and is not this user's
     *     0700 directory
     */
    static Path choose(Path stateDir, List<String> socketNames, Path shortRoot, PrintWriter log) {
        String longest = socketNames.stream().max((a, b) -> Integer.compare(bytes(a), bytes(b))).orElse("x") + ".sock";
        Path preferred = stateDir.toAbsolutePath().normalize().resolve("sockets");
        Path dir = preferred;
        if (bytes(preferred.resolve(longest).toString()) > InstanceEndpoint.MAX_SOCKET_PATH_BYTES) {
            dir = fallback(stateDir, shortRoot);
            if (bytes(dir.resolve(longest).toString()) > InstanceEndpoint.MAX_SOCKET_PATH_BYTES) {
                throw new IllegalArgumentException("socket path " + dir.resolve(longest) + " is longer than "
                        + InstanceEndpoint.MAX_SOCKET_PATH_BYTES + " bytes (sun_path); use --transport tcp");
            }
            log.println("moemesh: socket paths under " + preferred + " would be longer than "
                    + InstanceEndpoint.MAX_SOCKET_PATH_BYTES + " bytes (the Unix domain socket limit): the mesh's "
                    + "sockets are in " + dir);
            log.flush();
        }
        ownerOnlyDirectory(dir);
        return dir;
    }

    /** The short directory of {@code stateDir}'s sockets under {@code shortRoot}: {@code moemesh-<uid>-<hash>}. */
    static Path fallback(Path stateDir, Path shortRoot) {
        Path preferred = stateDir.toAbsolutePath().normalize().resolve("sockets");
        return shortRoot.resolve("moemesh-" + uid() + "-" + hash(preferred.toString()));
    }

    /** {@link #removeEmptyFallback(Path, Path)} under /tmp. */
    public static Optional<String> removeEmptyFallback(Path stateDir) {
        return removeEmptyFallback(stateDir, SHORT_ROOT);
    }

    /**
     * After the mesh of {@code stateDir} stopped: deletes the short socket directory {@link #choose} may have created
     * for it under {@code shortRoot}, only if it is a directory (not a link) owned by this user and empty (its
     * services unlink their sockets when they stop; a socket left by a killed one keeps the directory, to be reused
     * by the next {@code up}). Never fails {@code down}.
     *
     * @return a line for {@code down}'s report when the directory was removed
     */
    static Optional<String> removeEmptyFallback(Path stateDir, Path shortRoot) {
        Path dir;
        try {
            dir = fallback(stateDir, shortRoot);
        } catch (IllegalArgumentException unknownUid) {
            return Optional.empty();
        }
        try {
            if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)
                    || ((Integer) Files.getAttribute(dir, "unix:uid", LinkOption.NOFOLLOW_LINKS)) != uid()) {
                return Optional.empty();
            }
            try (Stream<Path> entries = Files.list(dir)) {
                if (entries.findAny().isPresent()) {
                    return Optional.empty();
                }
            }
            Files.delete(dir);
            return Optional.of("removed the socket directory " + dir);
        } catch (IOException e) {
            // e.g. a socket created between the check and the delete (DirectoryNotEmptyException): keep it.
            return Optional.empty();
        }
    }

    private static void ownerOnlyDirectory(Path dir) {
        try {
            if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
                Files.createDirectories(dir.getParent());
                try {
                    Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(OWNER_ONLY));
                } catch (java.nio.file.FileAlreadyExistsException raced) {
                    // checked below like any existing directory
                }
            }
            if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)
                    || ((Integer) Files.getAttribute(dir, "unix:uid", LinkOption.NOFOLLOW_LINKS)) != uid()) {
                throw new IllegalArgumentException(dir + " exists and is not a directory of this user; remove it, or use "
                        + "--transport tcp");
            }
            // umask may have narrowed the mode at creation; a wider one (an earlier run's) is narrowed here.
            Files.setPosixFilePermissions(dir, OWNER_ONLY);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the socket directory " + dir + ": " + e.getMessage(), e);
        }
    }

    /** This process's uid: the owner of /proc/self (Linux; domain sockets are only used where epoll is). */
    static int uid() {
        try {
            return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
        } catch (IOException | UnsupportedOperationException e) {
            throw new IllegalArgumentException("cannot tell this process's uid (" + e.getMessage() + "); use --transport tcp");
        }
    }

    private static String hash(String s) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(d, 0, 6);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static int bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8).length;
    }
}
