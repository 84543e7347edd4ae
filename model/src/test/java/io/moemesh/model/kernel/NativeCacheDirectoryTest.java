package io.moemesh.model.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.abort;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** JavaCPP loads what it finds in its cache directory: only a directory of this user's alone is used. */
class NativeCacheDirectoryTest {
    private static final String SETTING = "moemesh.test.native-cache-dir";

    @TempDir
    Path tmp;

    @BeforeEach
    void posixOnly() {
        assumeTrue(FileSystems.getDefault().supportedFileAttributeViews().contains("posix"), "POSIX permissions");
    }

    @Test
    void absentDirectory_isCreatedOwnerOnly() throws IOException {
        Path dir = tmp.resolve("cache/moemesh/native");

        assertThat(NativeCacheDirectory.prepare(dir, SETTING)).isEqualTo(dir.toAbsolutePath());

        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir))).isEqualTo("rwx------");
    }

    @Test
    void ownDirectoryOthersCannotWrite_isUsedAsItIs() throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("native"),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));

        assertThat(NativeCacheDirectory.prepare(dir, SETTING)).isEqualTo(dir.toAbsolutePath());
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir))).isEqualTo("rwxr-xr-x");
    }

    /** A world- or group-writable directory, even this user's: another user could plant a library in it. */
    @ParameterizedTest
    @ValueSource(strings = {"rwxrwxrwx", "rwxrwx---", "rwx---rwx"})
    void ownDirectoryWritableByOthers_isRefusedNamingItAndTheSetting(String mode) throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("native"));
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString(mode));

        assertThatThrownBy(() -> NativeCacheDirectory.prepare(dir, SETTING)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(dir.toAbsolutePath().toString()).hasMessageContaining(SETTING)
                .hasMessageContaining("writable by group or others");
    }

    @Test
    void symbolicLinkToADirectory_isRefused() throws IOException {
        Path real = Files.createDirectory(tmp.resolve("real"),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Path link = Files.createSymbolicLink(tmp.resolve("native"), real);

        assertThatThrownBy(() -> NativeCacheDirectory.prepare(link, SETTING)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(link.toAbsolutePath().toString()).hasMessageContaining("symbolic link");
    }

    /** Pre-created by another user (here: given to another uid, which needs the right to chown). */
    @Test
    void anotherUsersDirectory_isRefused() throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("native"),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        long other = NativeCacheDirectory.currentUid() + 4242;
        try {
            Files.setAttribute(dir, "unix:uid", (int) other, LinkOption.NOFOLLOW_LINKS);
        } catch (FileSystemException notPermitted) {
            abort("changing a directory's owner needs privileges: " + notPermitted);
        }

        assertThatThrownBy(() -> NativeCacheDirectory.prepare(dir, SETTING)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(dir.toAbsolutePath().toString()).hasMessageContaining(SETTING)
                .hasMessageContaining("belongs to uid " + other);
    }

    @Test
    void aFileInsteadOfADirectory_isRefused() throws IOException {
        Path file = Files.writeString(tmp.resolve("native"), "x");

        assertThatThrownBy(() -> NativeCacheDirectory.prepare(file, SETTING)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining(file.toAbsolutePath().toString());
    }

    @Test
    void theDefault_isPerUser_notUnderTheSharedTmpdir() {
        Path dir = NativeCacheDirectory.defaultDirectory();

        assertThat(dir.startsWith(Path.of(System.getProperty("user.home")).toAbsolutePath())).isTrue();
        assertThat(dir.startsWith(Path.of(System.getProperty("java.io.tmpdir")).toAbsolutePath())).isFalse();
    }

    /** An explicit -Dorg.bytedeco.javacpp.cachedir (the chart's emptyDir, the build's target/) is taken as given. */
    @Test
    void explicitJavacppCacheDir_winsAndIsNotChecked() throws IOException {
        Path unsafe = Files.createDirectory(tmp.resolve("native"));
        Files.setPosixFilePermissions(unsafe, PosixFilePermissions.fromString("rwxrwxrwx"));
        String before = System.getProperty(NativeCacheDirectory.JAVACPP_PROPERTY);
        System.setProperty(NativeCacheDirectory.JAVACPP_PROPERTY, tmp.resolve("given").toString());
        try {
            NativeCacheDirectory.useUnlessSet(unsafe, SETTING);

            assertThat(System.getProperty(NativeCacheDirectory.JAVACPP_PROPERTY)).isEqualTo(tmp.resolve("given").toString());
        } finally {
            if (before == null) {
                System.clearProperty(NativeCacheDirectory.JAVACPP_PROPERTY);
            } else {
                System.setProperty(NativeCacheDirectory.JAVACPP_PROPERTY, before);
            }
        }
    }
}
