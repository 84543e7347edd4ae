package io.moemesh.service.tls;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPublicKey;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CertificateDirectoryTest {
    @TempDir
    Path tmp;

    @Test
    void create_writesACaAndOneCertificatePerName_keysOwnerOnly() throws Exception {
        Path dir = tmp.resolve("tls");
        CertificateDirectory d = CertificateDirectory.create(dir, List.of("expert-0", "placer"));
        assertThat(d.caBundle()).isEqualTo(dir.resolve("ca.crt"));
        for (String key : List.of("ca.key", "expert-0.key", "placer.key")) {
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve(key)))).as(key)
                    .isEqualTo("rw-------");
        }
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("expert-0.crt"))))
                .isEqualTo("rw-r--r--");
        assertThat(dir).isDirectoryNotContaining("glob:**.tmp");

        X509Certificate ca = PemFiles.readCertificates(d.caBundle()).getFirst();
        assertThat(ca.getBasicConstraints()).as("a CA").isGreaterThanOrEqualTo(0);
        ca.verify(ca.getPublicKey());
        assertThat(MeshIdentity.of(ca)).as("the CA is no mesh identity").isEmpty();

        X509Certificate leaf = PemFiles.readCertificates(d.certChain("expert-0")).getFirst();
        leaf.verify(ca.getPublicKey());
        assertThat(leaf.getBasicConstraints()).as("not a CA").isEqualTo(-1);
        assertThat(leaf.getPublicKey()).isInstanceOf(ECPublicKey.class);
        assertThat(((ECPublicKey) leaf.getPublicKey()).getParams().getCurve().getField().getFieldSize()).isEqualTo(256);
        assertThat(leaf.getSigAlgName()).isEqualTo("SHA256withECDSA");
        assertThat(leaf.getExtendedKeyUsage()).containsExactlyInAnyOrder("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2");
        assertThat(leaf.getSubjectAlternativeNames()).containsExactlyInAnyOrder(
                List.of(6, "spiffe://moemesh/expert-0"), List.of(7, "127.0.0.1"), List.of(7, "0:0:0:0:0:0:0:1"),
                List.of(2, "localhost"), List.of(2, "expert-0"));
        assertThat(MeshIdentity.of(leaf)).contains(new MeshIdentity("expert-0"));
        assertThat(leaf.getNotAfter().toInstant()).isBefore(Instant.now().plus(Duration.ofDays(366)))
                .isAfter(Instant.now().plus(Duration.ofDays(364)));
        assertThat(PemFiles.readPrivateKey(d.privateKey("placer")).getAlgorithm()).isEqualTo("EC");
    }

    @Test
    void createAgain_keepsTheCa_andIssuesNewCertificates() {
        Path dir = tmp.resolve("tls");
        CertificateDirectory first = CertificateDirectory.create(dir, List.of("gateway"));
        X509Certificate ca = PemFiles.readCertificates(first.caBundle()).getFirst();
        X509Certificate leaf = PemFiles.readCertificates(first.certChain("gateway")).getFirst();

        CertificateDirectory second = CertificateDirectory.create(dir, List.of("gateway", "expert-3"));
        assertThat(PemFiles.readCertificates(second.caBundle()).getFirst()).isEqualTo(ca);
        X509Certificate again = PemFiles.readCertificates(second.certChain("gateway")).getFirst();
        assertThat(again.getSerialNumber()).isNotEqualTo(leaf.getSerialNumber());
        assertThat(second.settings("expert-3")).isEqualTo(TlsSettings.mtls(dir.resolve("expert-3.crt").toAbsolutePath(),
                dir.resolve("expert-3.key").toAbsolutePath(), dir.resolve("ca.crt").toAbsolutePath()));
    }

    @Test
    void aCaExpiringSoon_isReplaced() {
        Path dir = tmp.resolve("tls");
        CertificateAuthority old = CertificateAuthority.create("old", Duration.ofDays(10));
        old.write(dir.resolve("ca.crt"), dir.resolve("ca.key"));
        CertificateDirectory d = CertificateDirectory.create(dir, List.of("gateway"));
        X509Certificate ca = PemFiles.readCertificates(d.caBundle()).getFirst();
        assertThat(ca).isNotEqualTo(old.certificate());
        assertThat(ca.getSubjectX500Principal().getName()).isEqualTo("CN=moemesh mesh CA");
    }

    @Test
    void anUnreadableCaKey_isRefused_namingTheFile_andHowToStartOver() throws IOException {
        Path dir = tmp.resolve("tls");
        CertificateDirectory.create(dir, List.of());
        Files.writeString(dir.resolve("ca.key"), "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n");
        assertThatThrownBy(() -> CertificateDirectory.create(dir, List.of("gateway")))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith(dir.resolve("ca.key").toAbsolutePath() + ": not a PKCS#8 PEM private key")
                .hasMessageEndingWith("; delete " + dir.toAbsolutePath() + " to start over with a new mesh CA");
    }

    @Test
    void channelCredentials_forANameWithoutCertificate_isRefusedNamingTheFolder() {
        Path dir = tmp.resolve("tls");
        CertificateDirectory d = CertificateDirectory.create(dir, List.of("gateway"));
        assertThat(d.channelCredentials("gateway")).isNotNull();
        assertThatThrownBy(() -> CertificateDirectory.open(dir).channelCredentials("placer"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(dir.toAbsolutePath() + ": no certificate for placer (placer.crt is missing)");
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "Expert-0", "expert_0", "-x", "x-", "a/b"})
    void invalidNames_areRefused(String name) {
        assertThatThrownBy(() -> CertificateDirectory.create(tmp.resolve("tls"), List.of(name)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("mesh identity \"" + name + "\" must be 1-63 lower-case letters");
    }
}
