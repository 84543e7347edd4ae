package io.moemesh.service.grpc;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The file of a Unix domain socket a server is about to bind. {@code bind(2)} fails with EADDRINUSE while the path
 * exists, even when the process that bound it is gone (a {@code kill -9} leaves the file behind, unix(7)), so a
 * restart would fail forever. Before binding: a socket file that nobody answers on (connect is refused: ECONNREFUSED)
 * is stale and removed; a socket someone accepts connections on belongs to a live process and is a clear error (never
 * stolen); so is one whose connect fails otherwise (a live listener whose backlog is full answers EAGAIN, a file we
 * may not write EACCES): only a refusal proves the file stale. A path that is not a socket is never deleted.
 */
final class UnixSocketFile {
    private static final Logger log = LoggerFactory.getLogger(UnixSocketFile.class);
    /** S_IFMT / S_IFSOCK of st_mode (inode(7)). */
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;
    private static final Set<PosixFilePermission> OWNER_ONLY_DIR = PosixFilePermissions.fromString("rwx------");
    private static final Set<PosixFilePermission> OWNER_ONLY_SOCKET = PosixFilePermissions.fromString("rw-------");

    private UnixSocketFile() {
    }

    /**
     * Makes {@code socket} bindable: creates its directory if missing, removes a stale socket file.
     *
     * @param setting names the setting in errors
     * @throws IllegalStateException naming the setting when a live process listens there or the path is not a socket
     */
    static void prepare(Path socket, String setting) {
        try {
            Path dir = socket.getParent();
            if (dir != null && !Files.isDirectory(dir)) {
                // Owner-only, as a peer-uid socket's directory must be (prepareOwnerOnly); umask may narrow it further.
                Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(OWNER_ONLY_DIR));
            }
            if (!Files.exists(socket, LinkOption.NOFOLLOW_LINKS)) {
                return;
            }
            int mode = (Integer) Files.getAttribute(socket, "unix:mode", LinkOption.NOFOLLOW_LINKS);
            if ((mode & S_IFMT) != S_IFSOCK) {
                throw new IllegalStateException(setting + "=" + socket + " exists and is not a socket; refusing to "
                        + "replace it (remove it or choose another path)");
            }
            if (listening(socket, setting)) {
                throw new IllegalStateException(setting + "=" + socket + ": a live process already listens on this "
                        + "socket (another instance with the same socket path?); stop it or choose another path");
            }
            Files.deleteIfExists(socket);
            log.warn("{}={}: removed a stale socket file (nothing listened on it; left by a process that was killed)",
                    setting, socket);
        } catch (IOException e) {
            throw new UncheckedIOException(setting + "=" + socket + ": cannot prepare the socket path (" + e.getMessage()
                    + ")", e);
        }
    }

    /**
     * {@link #prepare} for a plaintext {@code peer-uid} socket, whose access control rests on the kernel's peer check
     * and, in depth, on the file system: the socket's directory must not be accessible to group or others (no one else
     * may see, replace or connect to the socket), so a directory with any group/other permission bit is refused.
     *
     * @param securitySetting named in the error as the alternative ({@code tls} keeps TLS on the socket)
     * @throws IllegalStateException naming {@code setting} and the directory's mode when it is group/world-accessible
     */
    static void prepareOwnerOnly(Path socket, String setting, String securitySetting) {
        prepare(socket, setting);
        Path dir = socket.getParent();
        int mode;
        try {
            mode = (Integer) Files.getAttribute(dir, "unix:mode");
        } catch (IOException e) {
            throw new UncheckedIOException(setting + "=" + socket + ": cannot read the mode of " + dir + " ("
                    + e.getMessage() + ")", e);
        }
        if ((mode & 077) != 0) {
            throw new IllegalStateException(setting + "=" + socket + ": the socket's directory " + dir + " is accessible "
                    + "to group or others (mode " + String.format("%04o", mode & 07777) + "); a plaintext socket served "
                    + "to this uid only (" + securitySetting + "=peer-uid) must be in a directory only its owner can "
                    + "enter: chmod 700 " + dir + ", choose another directory, or set " + securitySetting + "=tls");
        }
    }

    /** Makes the bound socket file 0600: connect(2) needs write permission on it (unix(7)). */
    static void ownerOnly(Path socket, String setting) {
        try {
            Files.setPosixFilePermissions(socket, OWNER_ONLY_SOCKET);
        } catch (IOException e) {
            throw new UncheckedIOException(setting + "=" + socket + ": cannot make the socket file 0600 ("
                    + e.getMessage() + ")", e);
        }
    }

    /**
     * Whether something listens on the socket. The connect is non-blocking: on a live listener whose backlog is full a
     * blocking connect(2) waits until it accepts, which would hang this start.
     *
     * @return false only when the connect is refused (ECONNREFUSED: no process has the file bound and listening,
     *         unix(7)) or the file is gone
     * @throws IllegalStateException naming the setting and the error when the connect fails otherwise: whether a live
     *         process owns the file cannot be told, and a file that may be live is never removed
     */
    static boolean listening(Path socket, String setting) {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.configureBlocking(false);
            ch.connect(UnixDomainSocketAddress.of(socket));
            return true;
        } catch (ConnectException refused) {
            return false;
        } catch (IOException e) {
            if (!Files.exists(socket, LinkOption.NOFOLLOW_LINKS)) {
                return false;
            }
            throw new IllegalStateException(setting + "=" + socket + ": cannot tell whether a live process listens on "
                    + "this socket (connect failed: " + e.getMessage() + "), so it is not removed; remove it yourself "
                    + "if no process uses it, or choose another path", e);
        }
    }

    static void deleteQuietly(Path socket) {
        try {
            Files.deleteIfExists(socket);
        } catch (IOException e) {
            log.debug("cannot delete {}: {}", socket, e.toString());
        }
    }
}
