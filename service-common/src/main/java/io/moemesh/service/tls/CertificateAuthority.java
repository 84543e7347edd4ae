package io.moemesh.service.tls;

import java.math.BigInteger;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.CertIOException;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * A mesh CA that issues service certificates, for {@code moemesh up} and tests (production meshes get theirs
 * from cert-manager or another issuer). Keys are ECDSA P-256, signatures SHA256withECDSA, made by the JDK's own
 * providers; BouncyCastle only assembles the X.509 structures (RFC 5280). The CA certificate is self-signed
 * (basic constraints CA, key usage keyCertSign and cRLSign). A service certificate carries its
 * {@link MeshIdentity} as URI SAN {@code spiffe://moemesh/<name>}, the loopback addresses (IP 127.0.0.1 and ::1,
 * DNS localhost) and its name as a DNS name, and may serve and call (extended key usage serverAuth and
 * clientAuth): every service is both.
 */
public final class CertificateAuthority {
    private static final String KEY_ALGORITHM = "EC";
    private static final String CURVE = "secp256r1";
    private static final String SIGNATURE = "SHA256withECDSA";
    /** Start validity a little in the past: a peer whose clock is slightly behind must not see "not yet valid". */
    private static final Duration BACKDATE = Duration.ofMinutes(5);
    private static final SecureRandom RANDOM = new SecureRandom();

    private final X509Certificate certificate;
    private final PrivateKey key;

    private CertificateAuthority(X509Certificate certificate, PrivateKey key) {
        this.certificate = certificate;
        this.key = key;
    }

    /** One issued certificate with its private key. */
    public record Issued(X509Certificate certificate, PrivateKey privateKey) {
        /** Writes the certificate (0644) and the PKCS#8 key (0600) as PEM. */
        public void write(Path certFile, Path keyFile) {
            PemFiles.writePrivateKey(keyFile, privateKey);
            PemFiles.writeCertificates(certFile, List.of(certificate));
        }
    }

    /** A new self-signed CA named {@code commonName}, valid from now for {@code validity}. */
    public static CertificateAuthority create(String commonName, Duration validity) {
        KeyPair pair = newKeyPair();
        X500Name subject = new X500Name("CN=" + commonName);
        Instant now = Instant.now();
        try {
            JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
            X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(subject, serial(), Date.from(now.minus(BACKDATE)),
                    Date.from(now.plus(validity)), subject, pair.getPublic())
                    .addExtension(Extension.basicConstraints, true, new BasicConstraints(true))
                    .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign))
                    .addExtension(Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(pair.getPublic()));
            return new CertificateAuthority(sign(b, pair.getPrivate()), pair.getPrivate());
        } catch (GeneralSecurityException | CertIOException e) {
            throw new IllegalStateException("cannot create the CA certificate " + subject, e);
        }
    }

    /**
     * A CA from its PEM certificate and PKCS#8 key.
     *
     * @throws IllegalArgumentException when a file is not what it must be, or the certificate is not a CA
     */
    public static CertificateAuthority load(Path certFile, Path keyFile) {
        X509Certificate cert = PemFiles.readCertificates(certFile).getFirst();
        if (cert.getBasicConstraints() < 0) {
            throw new IllegalArgumentException(certFile + ": " + cert.getSubjectX500Principal() + " is not a CA certificate");
        }
        return new CertificateAuthority(cert, PemFiles.readPrivateKey(keyFile));
    }

    public X509Certificate certificate() {
        return certificate;
    }

    /** Writes the CA certificate (0644) and its key (0600) as PEM. */
    public void write(Path certFile, Path keyFile) {
        new Issued(certificate, key).write(certFile, keyFile);
    }

    /**
     * A service certificate for {@code identity}, valid from now for {@code validity} but never beyond the CA's
     * own end of validity.
     */
    public Issued issue(MeshIdentity identity, Duration validity) {
        KeyPair pair = newKeyPair();
        Instant now = Instant.now();
        Instant end = now.plus(validity);
        if (end.isAfter(certificate.getNotAfter().toInstant())) {
            end = certificate.getNotAfter().toInstant();
        }
        try {
            JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
            GeneralNames sans = new GeneralNames(new GeneralName[] {
                new GeneralName(GeneralName.uniformResourceIdentifier, identity.uri().toString()),
                new GeneralName(GeneralName.iPAddress, "127.0.0.1"),
                new GeneralName(GeneralName.iPAddress, "::1"),
                new GeneralName(GeneralName.dNSName, "localhost"),
                new GeneralName(GeneralName.dNSName, identity.name())});
            X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(certificate, serial(),
                    Date.from(now.minus(BACKDATE)), Date.from(end), new X500Name("CN=" + identity.name()), pair.getPublic())
                    .addExtension(Extension.basicConstraints, true, new BasicConstraints(false))
                    .addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature))
                    .addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(
                            new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth}))
                    .addExtension(Extension.subjectAlternativeName, false, sans)
                    .addExtension(Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(pair.getPublic()))
                    .addExtension(Extension.authorityKeyIdentifier, false, ext.createAuthorityKeyIdentifier(certificate));
            return new Issued(sign(b, key), pair.getPrivate());
        } catch (GeneralSecurityException | CertIOException e) {
            throw new IllegalStateException("cannot issue a certificate for " + identity, e);
        }
    }

    private static X509Certificate sign(X509v3CertificateBuilder b, PrivateKey signingKey) throws GeneralSecurityException {
        try {
            ContentSigner signer = new JcaContentSignerBuilder(SIGNATURE).build(signingKey);
            return new JcaX509CertificateConverter().getCertificate(b.build(signer));
        } catch (OperatorCreationException e) {
            throw new GeneralSecurityException("no " + SIGNATURE + " signer", e);
        }
    }

    private static KeyPair newKeyPair() {
        try {
            KeyPairGenerator g = KeyPairGenerator.getInstance(KEY_ALGORITHM);
            g.initialize(new ECGenParameterSpec(CURVE), RANDOM);
            return g.generateKeyPair();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("the JDK offers no " + CURVE + " key pairs", e);
        }
    }

    /** 127 random bits: positive, unique in practice, within RFC 5280's 20 octets. */
    private static BigInteger serial() {
        return new BigInteger(127, RANDOM).setBit(0);
    }
}
