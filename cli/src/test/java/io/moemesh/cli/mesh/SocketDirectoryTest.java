package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.service.grpc.InstanceEndpoint;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SocketDirectoryTest {
    private static final List<String> NAMES = List.of("expert-0", "expert-1", "expert-10");
    @TempDir
    Path tmp;
    private final StringWriter log = new StringWriter();

    @Test
    void shortStateDir_keepsTheSocketsInItsSocketsFolder_ownerOnly_andSaysNothing() throws IOException {
        Path dir = SocketDirectory.choose(tmp.resolve("state"), NAMES, tmp.resolve("short"), new PrintWriter(log));
        assertThat(dir).isEqualTo(tmp.resolve("state").resolve("sockets"));
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir))).isEqualTo("rwx------");
        assertThat(log.toString()).isEmpty();
    }

    @Test
    void stateDirTooDeepForSunPath_putsTheSocketsInAShortOwnerOnlyDir_sameForTheSameStateDir_andSaysSo()
            throws IOException {
        Path deep = tmp.resolve("a".repeat(50)).resolve("b".repeat(50)).resolve("state");
        Path shortRoot = tmp.resolve("short");
        Path dir = SocketDirectory.choose(deep, NAMES, shortRoot, new PrintWriter(log));
        assertThat(dir.getParent()).isEqualTo(shortRoot);
        assertThat(dir.getFileName().toString()).startsWith("moemesh-" + SocketDirectory.uid() + "-");
        assertThat(dir.resolve("expert-10.sock").toString().getBytes(StandardCharsets.UTF_8).length)
                .isLessThanOrEqualTo(InstanceEndpoint.MAX_SOCKET_PATH_BYTES);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir))).isEqualTo("rwx------");
        assertThat(log.toString()).contains("longer than 107 bytes").contains(dir.toString());
        // a restart of the same mesh finds the same directory; another state dir gets another one
        assertThat(SocketDirectory.choose(deep, NAMES, shortRoot, new PrintWriter(log))).isEqualTo(dir);
        assertThat(SocketDirectory.choose(deep.resolveSibling("other"), NAMES, shortRoot, new PrintWriter(log)))
                .isNotEqualTo(dir);
    }

    @Test
    void down_removesTheEmptyShortDirItCreated_butKeepsOneWithASocketLeftInIt() throws IOException {
        Path deep = tmp.resolve("a".repeat(50)).resolve("b".repeat(50)).resolve("state");
        Path shortRoot = tmp.resolve("short");
        Path dir = SocketDirectory.choose(deep, NAMES, shortRoot, new PrintWriter(log));
        Path left = Files.writeString(dir.resolve("expert-0.sock"), "");
        assertThat(SocketDirectory.removeEmptyFallback(deep, shortRoot)).isEmpty();
        assertThat(dir).isDirectory();
        Files.delete(left);
        assertThat(SocketDirectory.removeEmptyFallback(deep, shortRoot)).hasValueSatisfying(line ->
                assertThat(line).contains(dir.toString()));
        assertThat(dir).doesNotExist();
        assertThat(shortRoot).isDirectory();
        // nothing there (a state dir whose sockets never needed the short directory): nothing to do
        assertThat(SocketDirectory.removeEmptyFallback(tmp.resolve("state"), shortRoot)).isEmpty();
    }

    @Test
    void down_neverRemovesAShortDirThatIsALink() throws IOException {
        Path deep = tmp.resolve("a".repeat(50)).resolve("b".repeat(50)).resolve("state");
        Path shortRoot = Files.createDirectories(tmp.resolve("short"));
        Path target = Files.createDirectories(tmp.resolve("elsewhere"));
        Path link = Files.createSymbolicLink(SocketDirectory.fallback(deep, shortRoot), target);
        assertThat(SocketDirectory.removeEmptyFallback(deep, shortRoot)).isEmpty();
        assertThat(link).isSymbolicLink();
        assertThat(target).isDirectory();
    }

    @Test
    void existingSocketDirWithAWiderMode_isNarrowedToOwnerOnly() throws IOException {
        Path sockets = Files.createDirectories(tmp.resolve("state").resolve("sockets"));
        Files.setPosixFilePermissions(sockets, PosixFilePermissions.fromString("rwxr-xr-x"));
        SocketDirectory.choose(tmp.resolve("state"), NAMES, tmp.resolve("short"), new PrintWriter(log));
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(sockets))).isEqualTo("rwx------");
    }

    @Test
    void aFileWhereTheSocketDirGoes_isRefused() throws IOException {
        Files.createDirectories(tmp.resolve("state"));
        Files.writeString(tmp.resolve("state").resolve("sockets"), "not a dir");
        assertThatThrownBy(() -> SocketDirectory.choose(tmp.resolve("state"), NAMES, tmp.resolve("short"),
                new PrintWriter(log))).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("is not a directory of this user").hasMessageContaining("--transport tcp");
    }

    @Test
    void transportOption_takesTcpOrUnix_only() {
        assertThat(MeshTransport.parse("TCP")).isEqualTo(MeshTransport.TCP);
        assertThatThrownBy(() -> MeshTransport.parse("udp")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("--transport must be tcp or unix");
    }
}
