package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class InstanceEndpointTest {

    @ParameterizedTest(name = "{0} → {1}")
    @CsvSource(delimiter = '|', value = {
        "127.0.0.1:9100            | tcp",
        "expert-0.moemesh:9100     | tcp",
        "[::1]:7101                | tcp",
        "unix:///tmp/m/expert-0.sock | unix",
    })
    void endpointForm_choosesTheTransport(String endpoint, String transport) {
        InstanceEndpoint e = InstanceEndpoint.parse(endpoint);
        assertThat(e.transport()).isEqualTo(transport);
        assertThat(e.target()).isEqualTo(endpoint);
        assertThat(e.isUnix()).isEqualTo(transport.equals("unix"));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "unix://relative.sock   | three slashes, an absolute path",
        "unix:relative.sock     | three slashes, an absolute path",
        "'unix://'              | three slashes, an absolute path",
        "'unix:///'             | the socket path names no socket file",
        "'unix:///tmp/dir/'     | the socket path names no socket file",
        "nohost                 | is neither host:port nor unix:///absolute/path.sock",
        "host:99999             | is neither host:port nor unix:///absolute/path.sock",
        "http://host:80         | is neither host:port nor unix:///absolute/path.sock",
        "'  '                   | endpoint is empty",
        "unix:///tmp/my mesh/e.sock | is not a valid URI",
        "unix:///tmp/a%zz/e.sock    | is not a valid URI",
        "unix:///tmp/why?/e.sock    | must be percent-encoded",
        "unix:///tmp/no#1/e.sock    | must be percent-encoded",
    })
    void badEndpoint_isRefusedNamingIt(String endpoint, String message) {
        assertThatThrownBy(() -> InstanceEndpoint.parse(endpoint)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message);
    }

    /** A state directory under "My Projects" (or with #, %, ?) gave a target grpc-java could not parse. */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "/tmp/my mesh/sockets/expert-0.sock | unix:///tmp/my%20mesh/sockets/expert-0.sock",
        "/tmp/a#b/c%d/why?.sock             | unix:///tmp/a%23b/c%25d/why%3F.sock",
        "/tmp/m/expert-0.sock               | unix:///tmp/m/expert-0.sock",
    })
    void unixEndpoint_percentEncodesThePath_andParseDecodesIt(String path, String target) {
        Path socket = Path.of(path);
        InstanceEndpoint e = InstanceEndpoint.unix(socket);
        assertThat(e.target()).isEqualTo(target);
        assertThat(e.socket()).isEqualTo(socket);
        assertThat(InstanceEndpoint.parse(target)).isEqualTo(e);
    }

    @ParameterizedTest(name = "{0} bytes")
    @ValueSource(ints = {107, 108, 200})
    void socketPath_atMost107Bytes(int length) {
        String path = "/" + "s".repeat(length - 1);
        if (length <= InstanceEndpoint.MAX_SOCKET_PATH_BYTES) {
            assertThat(InstanceEndpoint.socketPath("x.socket", path)).isEqualTo(Path.of(path));
            assertThat(InstanceEndpoint.unix(Path.of(path)).isUnix()).isTrue();
        } else {
            assertThatThrownBy(() -> InstanceEndpoint.socketPath("x.socket", path))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("x.socket").hasMessageContaining(length + " bytes")
                    .hasMessageContaining("at most 107");
            assertThatThrownBy(() -> InstanceEndpoint.parse("unix://" + path))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("at most 107");
        }
    }
}
