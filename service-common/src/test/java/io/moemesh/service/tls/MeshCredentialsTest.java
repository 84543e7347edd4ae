package io.moemesh.service.tls;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.TlsChannelCredentials;
import io.grpc.TlsServerCredentials;
import io.moemesh.service.settings.SettingRefusedException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class MeshCredentialsTest {
    private static final String PREFIX = "moemesh.gateway.tls";

    @TempDir
    static Path tmp;
    private static CertificateDirectory mesh;
    private static Path garbage;

    @BeforeAll
    static void files() throws IOException {
        mesh = CertificateDirectory.create(tmp.resolve("mesh"), List.of("gateway"));
        garbage = Files.writeString(tmp.resolve("garbage.pem"), "not a PEM file\n");
    }

    @Test
    void mtls_givesTlsServerAndChannelCredentials_clientCertificateRequired() {
        try (MeshCredentials c = MeshCredentials.load(mesh.settings("gateway"), PREFIX)) {
            assertThat(c.isMtls()).isTrue();
            assertThat(c.server()).isInstanceOfSatisfying(TlsServerCredentials.class, s -> {
                assertThat(s.getClientAuth()).isEqualTo(TlsServerCredentials.ClientAuth.REQUIRE);
                assertThat(s.getKeyManagers()).hasSize(1);
                assertThat(s.getTrustManagers()).hasSize(1);
            });
            assertThat(c.channel()).isInstanceOfSatisfying(TlsChannelCredentials.class,
                    ch -> assertThat(ch.getKeyManagers()).hasSize(1));
        }
    }

    @Test
    void plaintext_givesInsecureCredentials() {
        try (MeshCredentials c = MeshCredentials.load(TlsSettings.plaintext(), PREFIX)) {
            assertThat(c.server()).isInstanceOf(InsecureServerCredentials.class);
            assertThat(c.channel()).isInstanceOf(InsecureChannelCredentials.class);
        }
    }

    static Stream<Arguments> wrongFiles() {
        return Stream.of(
                Arguments.of("cert-chain", (Function<TlsSettings, TlsSettings>) s -> withFiles(garbage, s.privateKey(), s.caBundle()),
                        "not PEM X.509 certificates"),
                Arguments.of("cert-chain", (Function<TlsSettings, TlsSettings>) s -> withFiles(s.caBundle(), s.privateKey(), s.caBundle()),
                        "starts with a CA certificate; it must start with this service's own certificate"),
                Arguments.of("private-key", (Function<TlsSettings, TlsSettings>) s -> withFiles(s.certChain(), s.certChain(), s.caBundle()),
                        "not a PKCS#8 PEM private key"),
                Arguments.of("ca-bundle", (Function<TlsSettings, TlsSettings>) s -> withFiles(s.certChain(), s.privateKey(), garbage),
                        "not PEM X.509 certificates"));
    }

    private static TlsSettings withFiles(Path cert, Path key, Path ca) {
        return TlsSettings.mtls(cert, key, ca);
    }

    @ParameterizedTest(name = "{0}: {2}")
    @MethodSource("wrongFiles")
    void aFileThatIsNotWhatItMustBe_isRefused_namingItsProperty(String property, Function<TlsSettings, TlsSettings> wrong,
                                                               String problem) {
        TlsSettings s = wrong.apply(mesh.settings("gateway"));
        assertThatThrownBy(() -> MeshCredentials.load(s, PREFIX)).isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo(PREFIX + "." + property))
                .hasMessageStartingWith(PREFIX + "." + property + " (MOEMESH_GATEWAY_TLS_"
                        + property.toUpperCase().replace('-', '_') + "): ")
                .hasMessageContaining(problem);
    }
}
