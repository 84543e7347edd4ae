package io.moemesh.service.tls;

import io.grpc.util.CertificateUtils;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.util.Base64;
import java.util.List;
import java.util.Set;

/**
 * PEM files of certificates ({@code BEGIN CERTIFICATE}) and PKCS#8 private keys ({@code BEGIN PRIVATE KEY},
 * RFC 7468), read the way grpc-java's TLS reads them. Private keys are written owner-only (0600): the file is
 * created with that mode before a byte of the key is in it.
 */
public final class PemFiles {
    private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> WORLD_READABLE = PosixFilePermissions.fromString("rw-r--r--");
    private static final Base64.Encoder BASE64 = Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII));

    private PemFiles() {
    }

    /** The certificates of a PEM file, in file order (leaf first for a chain). */
    public static List<X509Certificate> readCertificates(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            X509Certificate[] certs = CertificateUtils.getX509Certificates(in);
            if (certs.length == 0) {
                throw new IllegalArgumentException(file + ": no PEM certificate in it");
            }
            return List.of(certs);
        } catch (CertificateException e) {
            throw new IllegalArgumentException(file + ": not PEM X.509 certificates (" + e.getMessage() + ")", e);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read", e);
        }
    }

    /** A PKCS#8 PEM private key (EC or RSA). */
    public static PrivateKey readPrivateKey(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            return CertificateUtils.getPrivateKey(in);
        } catch (GeneralSecurityException | RuntimeException e) {
            // grpc-java's parser fails with whatever the first step that trips throws (no PEM block, bad base64,
            // an unknown key algorithm).
            throw new IllegalArgumentException(file + ": not a PKCS#8 PEM private key (BEGIN PRIVATE KEY) ("
                    + e.getMessage() + ")", e);
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read", e);
        }
    }

    /** Writes certificates (mode 0644), atomically: a reader never sees half a file. */
    public static void writeCertificates(Path file, List<X509Certificate> certs) {
        StringBuilder pem = new StringBuilder();
        for (X509Certificate c : certs) {
            try {
                pem.append(block("CERTIFICATE", c.getEncoded()));
            } catch (CertificateException e) {
                throw new IllegalStateException("cannot encode certificate " + c.getSubjectX500Principal(), e);
            }
        }
        write(file, pem.toString(), WORLD_READABLE);
    }

    /** Writes a private key as PKCS#8 PEM, owner-only (0600), atomically. */
    public static void writePrivateKey(Path file, PrivateKey key) {
        if (!"PKCS#8".equals(key.getFormat())) {
            throw new IllegalArgumentException("private key format " + key.getFormat() + " is not PKCS#8");
        }
        write(file, block("PRIVATE KEY", key.getEncoded()), OWNER_ONLY);
    }

    private static String block(String type, byte[] der) {
        return "-----BEGIN " + type + "-----\n" + BASE64.encodeToString(der) + "\n-----END " + type + "-----\n";
    }

    private static void write(Path file, String content, Set<PosixFilePermission> mode) {
        Path dir = file.toAbsolutePath().getParent();
        try {
            Files.createDirectories(dir);
            // A temp file is created owner-only on POSIX file systems; the final mode is set before the rename.
            Path tmp = Files.createTempFile(dir, file.getFileName().toString(), ".tmp");
            try {
                if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
                    Files.setPosixFilePermissions(tmp, OWNER_ONLY);
                }
                Files.writeString(tmp, content, StandardCharsets.US_ASCII);
                if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
                    Files.setPosixFilePermissions(tmp, mode);
                }
                try {
                    Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
                }
            } finally {
                Files.deleteIfExists(tmp);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write", e);
        }
    }
}
