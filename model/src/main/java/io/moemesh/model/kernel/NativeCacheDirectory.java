package io.moemesh.model.kernel;

import java.io.IOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * The directory JavaCPP unpacks native libraries (OpenBLAS) into, and dlopens them from. JavaCPP reuses a file
 * already there whose length and modification time match the jar entry's, so whoever can write the directory
 * chooses the code this process runs: a shared, predictable path such as {@code /tmp/moemesh-native}, created
 * first by another local user, would hand them the process. So a directory is used only when it is this user's
 * alone: absent, it is created with mode 0700; present, it must be a directory (not a symbolic link to one),
 * owned by this process's user, and writable by neither group nor others. The default is per user,
 * {@code ${user.home}/.cache/moemesh/native}, never under {@code java.io.tmpdir}.
 *
 * <p>An explicit {@code -Dorg.bytedeco.javacpp.cachedir} is JavaCPP's own setting and is left as given: the
 * Helm chart points it at {@code /var/cache/moemesh/native}, a directory the service creates inside the pod's
 * emptyDir, and {@code ./moemesh up} at the state directory. The images set {@code -Dmoemesh.javacpp.cachedir}
 * to the same path (their home directory is on the read-only root). On a file system without POSIX permissions (Windows) the directory is only
 * created.
 */
public final class NativeCacheDirectory {
    /** JavaCPP's cache directory property: once set, it is what JavaCPP uses. */
    public static final String JAVACPP_PROPERTY = "org.bytedeco.javacpp.cachedir";
    private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rwx------");

    private NativeCacheDirectory() {
    }

    /** {@code ${user.home}/.cache/moemesh/native}: this user's, unlike anything under java.io.tmpdir. */
    public static Path defaultDirectory() {
        return Path.of(System.getProperty("user.home"), ".cache", "moemesh", "native").toAbsolutePath();
    }

    /**
     * Makes {@code dir} JavaCPP's cache directory, prepared by {@link #prepare}, unless
     * {@code -Dorg.bytedeco.javacpp.cachedir} is already set (that one wins, unchecked). Call before anything loads
     * a native library.
     *
     * @param setting the property that named {@code dir}, for the error message
     * @throws IllegalStateException as {@link #prepare}
     */
    public static void useUnlessSet(Path dir, String setting) {
        if (System.getProperty(JAVACPP_PROPERTY) == null) {
            System.setProperty(JAVACPP_PROPERTY, prepare(dir, setting).toString());
        }
    }

    /**
     * Creates {@code dir} (and missing parents) with mode 0700 when absent, and checks that it is this user's alone.
     *
     * @param setting the property that named {@code dir} (or where its default came from), for the error message
     * @return {@code dir}, absolute
     * @throws IllegalStateException naming the directory and {@code setting} when it cannot be created, is a
     *                               symbolic link or not a directory, belongs to another user, or is group- or
     *                               other-writable
     */
    public static Path prepare(Path dir, String setting) {
        Path abs = dir.toAbsolutePath();
        boolean posix = FileSystems.getDefault().supportedFileAttributeViews().contains("posix");
        try {
            if (!Files.exists(abs, LinkOption.NOFOLLOW_LINKS)) {
                if (posix) {
                    Files.createDirectories(abs, PosixFilePermissions.asFileAttribute(OWNER_ONLY));
                } else {
                    Files.createDirectories(abs);
                }
            }
            if (!posix) {
                return abs;
            }
            // Read after creating: another user may have created it in between, and then it fails the checks.
            PosixFileAttributes a = Files.readAttributes(abs, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            if (a.isSymbolicLink() || !a.isDirectory()) {
                throw refused(abs, setting, a.isSymbolicLink() ? "is a symbolic link" : "is not a directory");
            }
            long uid = ((Number) Files.getAttribute(abs, "unix:uid", LinkOption.NOFOLLOW_LINKS)).longValue();
            long self = currentUid();
            if (uid != self) {
                throw refused(abs, setting, "belongs to uid " + uid + " (" + a.owner().getName()
                        + "), not to this process's uid " + self);
            }
            if (a.permissions().contains(PosixFilePermission.GROUP_WRITE)
                    || a.permissions().contains(PosixFilePermission.OTHERS_WRITE)) {
                throw refused(abs, setting, "is writable by group or others ("
                        + PosixFilePermissions.toString(a.permissions()) + "); chmod go-w it");
            }
            return abs;
        } catch (IOException | UnsupportedOperationException e) {
            throw new IllegalStateException("native library cache " + abs + " (" + setting + ") cannot be prepared: "
                    + e, e);
        }
    }

    /** This process's user id, as the kernel sees it (the owner of what it creates). */
    static long currentUid() {
        return new com.sun.security.auth.module.UnixSystem().getUid();
    }

    private static IllegalStateException refused(Path dir, String setting, String why) {
        return new IllegalStateException("native library cache " + dir + " (" + setting + ") " + why + ": native "
                + "libraries are loaded from it, so it must be this user's alone; set " + setting + " to another "
                + "directory or fix this one");
    }
}
