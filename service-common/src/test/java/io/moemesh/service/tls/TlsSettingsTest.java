package io.moemesh.service.tls;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class TlsSettingsTest {
    private static final String PREFIX = "moemesh.expert.tls";

    @TempDir
    Path dir;
    private Path file;

    @BeforeEach
    void aFile() throws IOException {
        file = dir.resolve("present.pem");
        Files.writeString(file, "x");
    }

    @Test
    void unsetComponents_areMtlsWithAOneMinuteReload() {
        TlsSettings s = new TlsSettings(null, null, null, null, null);
        assertThat(s.mode()).isEqualTo(TlsSettings.Mode.MTLS);
        assertThat(s.isMtls()).isTrue();
        assertThat(s.reloadPeriod()).isEqualTo(Duration.ofMinutes(1));
        assertThat(TlsSettings.Mode.PLAINTEXT.value()).isEqualTo("plaintext");
    }

    static Stream<Arguments> missingFiles() {
        Path f = Path.of("set.pem"); // files are only looked at once all three are set
        return Stream.of(
                Arguments.of(null, null, null, List.of("cert-chain", "private-key", "ca-bundle")),
                Arguments.of(f, null, f, List.of("private-key")),
                Arguments.of(f, f, null, List.of("ca-bundle")));
    }

    @ParameterizedTest
    @MethodSource("missingFiles")
    void mtls_withoutItsFiles_isRefused_namingTheMissingProperties_andTheExplicitPlaintextSetting(
            Path cert, Path key, Path ca, List<String> missing) {
        TlsSettings s = new TlsSettings(null, cert, key, ca, null);
        assertThatThrownBy(() -> s.validated(PREFIX)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("moemesh.expert.tls.mode is mtls (the default), but ")
                .hasMessageContaining("To run without TLS, set moemesh.expert.tls.mode=plaintext "
                        + "(MOEMESH_EXPERT_TLS_MODE=plaintext) explicitly.")
                .satisfies(e -> {
                    for (String p : missing) {
                        assertThat(e.getMessage()).contains(PREFIX + "." + p + " (MOEMESH_EXPERT_TLS_"
                                + p.toUpperCase().replace('-', '_') + ")");
                    }
                    for (String p : List.of("cert-chain", "private-key", "ca-bundle")) {
                        if (!missing.contains(p)) {
                            assertThat(e.getMessage()).doesNotContain(PREFIX + "." + p);
                        }
                    }
                });
    }

    @Test
    void mtls_withAFileThatIsNotThere_isRefused_namingThePropertyAndThePath() {
        Path absent = dir.resolve("absent.pem");
        assertThatThrownBy(() -> new TlsSettings(null, file, absent, file, null).validated("moemesh.gateway.tls"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.gateway.tls.private-key (MOEMESH_GATEWAY_TLS_PRIVATE_KEY): " + absent
                        + " is not a readable file");
    }

    @ParameterizedTest
    @ValueSource(strings = {"PT30S", "PT-1S", "PT0.5S"})
    void reloadPeriod_belowAMinuteButNotZero_isRefused(String period) {
        TlsSettings s = new TlsSettings(null, file, file, file, Duration.parse(period));
        assertThatThrownBy(() -> s.validated(PREFIX)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("moemesh.expert.tls.reload-period (MOEMESH_EXPERT_TLS_RELOAD_PERIOD) must be 0");
    }

    @ParameterizedTest
    @ValueSource(strings = {"PT0S", "PT1M", "PT1H"})
    void reloadPeriod_zeroOrAtLeastAMinute_isAccepted(String period) {
        TlsSettings s = new TlsSettings(TlsSettings.Mode.MTLS, file, file, file, Duration.parse(period));
        assertThat(s.validated(PREFIX)).isSameAs(s);
    }

    @Test
    void plaintext_needsNoFiles() {
        assertThat(TlsSettings.plaintext().validated(PREFIX).isMtls()).isFalse();
        assertThat(new TlsSettings(TlsSettings.Mode.PLAINTEXT, null, null, null, null).validated(PREFIX).isMtls()).isFalse();
    }
}
