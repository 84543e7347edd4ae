package io.moemesh.service.tls;

import io.grpc.ChannelCredentials;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Collection;
import java.util.List;

/**
 * A folder of PEM files for the mesh, as {@code moemesh up} writes {@code <state-dir>/tls/} (and tests and
 * {@code bench mesh} write theirs):
 *
 * <pre>
 * ca.crt, ca.key        the mesh CA (self-signed, 10 years); ca.key is 0600
 * NAME.crt, NAME.key    one certificate per identity (spiffe://moemesh/NAME, 1 year); NAME.key is 0600
 * </pre>
 *
 * <p>{@link #create} keeps a CA that is already there (so tools that trust it keep working across
 * {@code down} / {@code up}) unless it expires within {@link #CA_RENEWAL}, and issues the named certificates
 * anew every time.
 */
public final class CertificateDirectory {
    public static final Duration CA_VALIDITY = Duration.ofDays(3650);
    public static final Duration LEAF_VALIDITY = Duration.ofDays(365);
    /** A CA that ends sooner than this is replaced (the certificates it would sign must not outlive it soon). */
    public static final Duration CA_RENEWAL = Duration.ofDays(30);
    static final String CA_NAME = "moemesh mesh CA";

    private final Path dir;

    private CertificateDirectory(Path dir) {
        this.dir = dir.toAbsolutePath();
    }

    /**
     * Writes a certificate and key for each of {@code names} into {@code dir}, signed by the CA found there (or a
     * new one).
     *
     * @throws IllegalArgumentException for an invalid name, or a CA certificate or key there that cannot be read
     *     (naming the file; deleting the folder gives a new CA)
     */
    public static CertificateDirectory create(Path dir, Collection<String> names) {
        CertificateDirectory d = new CertificateDirectory(dir);
        CertificateAuthority ca = d.authority();
        for (String name : names) {
            MeshIdentity id = new MeshIdentity(name);
            ca.issue(id, LEAF_VALIDITY).write(d.certChain(name), d.privateKey(name));
        }
        return d;
    }

    /** A folder written before (no file is checked until one is used). */
    public static CertificateDirectory open(Path dir) {
        return new CertificateDirectory(dir);
    }

    private CertificateAuthority authority() {
        Path cert = caBundle();
        Path key = dir.resolve("ca.key");
        if (Files.exists(cert) || Files.exists(key)) {
            CertificateAuthority existing;
            try {
                existing = CertificateAuthority.load(cert, key);
            } catch (RuntimeException e) {
                throw new IllegalArgumentException(e.getMessage() + "; delete " + dir + " to start over with a new mesh CA", e);
            }
            X509Certificate c = existing.certificate();
            if (c.getNotAfter().toInstant().isAfter(Instant.now().plus(CA_RENEWAL))) {
                return existing;
            }
        }
        CertificateAuthority ca = CertificateAuthority.create(CA_NAME, CA_VALIDITY);
        ca.write(cert, key);
        return ca;
    }

    public Path dir() {
        return dir;
    }

    /** {@code ca.crt}: the mesh CA certificate, the trust bundle of every service. */
    public Path caBundle() {
        return dir.resolve("ca.crt");
    }

    public Path certChain(String name) {
        return dir.resolve(new MeshIdentity(name).name() + ".crt");
    }

    public Path privateKey(String name) {
        return dir.resolve(new MeshIdentity(name).name() + ".key");
    }

    /** Mutual TLS as {@code name}, files read once. */
    public TlsSettings settings(String name) {
        return TlsSettings.mtls(certChain(name), privateKey(name), caBundle());
    }

    /**
     * Client credentials as {@code name} for the mesh's internal ports (files read once: nothing to close).
     *
     * @throws IllegalArgumentException when this folder has no certificate for {@code name}
     */
    public ChannelCredentials channelCredentials(String name) {
        for (Path f : List.of(certChain(name), privateKey(name), caBundle())) {
            if (!Files.isRegularFile(f)) {
                throw new IllegalArgumentException(dir + ": no certificate for " + name + " (" + f.getFileName()
                        + " is missing)");
            }
        }
        return MeshCredentials.load(settings(name), "tls").channel();
    }
}
