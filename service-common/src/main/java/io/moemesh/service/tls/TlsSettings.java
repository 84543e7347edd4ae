package io.moemesh.service.tls;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * TLS of the gRPC channels between the mesh's services ({@code moemesh.expert.tls.*} on the expert-service,
 * {@code moemesh.gateway.tls.*} for the gateway's channels to expert-services; bound by Spring from properties
 * or environment variables such as {@code MOEMESH_EXPERT_TLS_CERT_CHAIN}). Mutual TLS is the default: every
 * peer presents a certificate of the mesh CA and trusts only that CA. On Kubernetes the three files come from a
 * mounted Secret (a cert-manager {@code Certificate} writes {@code tls.crt}, {@code tls.key} and {@code ca.crt});
 * {@code moemesh up} writes them into {@code <state-dir>/tls/} ({@link CertificateDirectory}).
 *
 * <p>Every component may be left unset by the binder: {@code mode} then is {@link Mode#MTLS} and
 * {@code reloadPeriod} {@link #DEFAULT_RELOAD_PERIOD}. Whether the files are present is checked by
 * {@link #validated(String)}, which names the owner's properties in its messages.
 *
 * @param mode         {@code mtls} (default): mutual TLS with the files below; {@code plaintext}: no TLS and no
 *                     peer authentication, only when set explicitly (a test rig, a trusted single host)
 * @param certChain    PEM file: this service's certificate first, then any intermediates, issued by the mesh CA
 *                     (Kubernetes: {@code tls.crt})
 * @param privateKey   PEM file: the PKCS#8 private key ({@code BEGIN PRIVATE KEY}) of the chain's first
 *                     certificate (Kubernetes: {@code tls.key})
 * @param caBundle     PEM file: the mesh CA certificate(s), the only roots trusted for peers (Kubernetes:
 *                     {@code ca.crt})
 * @param reloadPeriod how often the three files are read again, so that a rotated Secret is used without a
 *                     restart (a new certificate and key are taken once both files changed); {@code 0} = read
 *                     once at startup; otherwise at least one minute (grpc-java's AdvancedTls refresh minimum);
 *                     default 1 minute
 */
public record TlsSettings(Mode mode, Path certChain, Path privateKey, Path caBundle, Duration reloadPeriod) {
    public static final Duration DEFAULT_RELOAD_PERIOD = Duration.ofMinutes(1);
    static final Duration MIN_RELOAD_PERIOD = Duration.ofMinutes(1);

    /** Transport security of the internal gRPC channels. */
    public enum Mode {
        /** Mutual TLS: both ends present a certificate of the mesh CA. */
        MTLS,
        /** No TLS, no peer authentication: only when chosen explicitly. */
        PLAINTEXT;

        /** The property value ({@code mtls}, {@code plaintext}). */
        public String value() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    public TlsSettings {
        mode = mode == null ? Mode.MTLS : mode;
        reloadPeriod = reloadPeriod == null ? DEFAULT_RELOAD_PERIOD : reloadPeriod;
    }

    /** Explicit plaintext: no TLS. */
    public static TlsSettings plaintext() {
        return new TlsSettings(Mode.PLAINTEXT, null, null, null, Duration.ZERO);
    }

    /** Mutual TLS with these files, read once (tools and tests; services use the bound settings). */
    public static TlsSettings mtls(Path certChain, Path privateKey, Path caBundle) {
        return new TlsSettings(Mode.MTLS, certChain, privateKey, caBundle, Duration.ZERO);
    }

    public boolean isMtls() {
        return mode == Mode.MTLS;
    }

    /**
     * Checks the settings as the properties under {@code prefix} (e.g. {@code moemesh.expert.tls}): in mtls mode
     * the three files must be set and readable, the reload period 0 or at least a minute.
     *
     * @return this
     * @throws IllegalArgumentException naming the properties (and their environment variables) that are wrong,
     *     and, for missing files, how to run plaintext explicitly
     */
    public TlsSettings validated(String prefix) {
        if (reloadPeriod.isNegative() || (!reloadPeriod.isZero() && reloadPeriod.compareTo(MIN_RELOAD_PERIOD) < 0)) {
            throw new IllegalArgumentException(property(prefix, "reload-period") + " must be 0 (read once) or at least "
                    + "1m (grpc-java refreshes at most once a minute), got " + reloadPeriod);
        }
        if (mode == Mode.PLAINTEXT) {
            return this;
        }
        List<String> missing = new ArrayList<>();
        if (certChain == null) {
            missing.add(property(prefix, "cert-chain"));
        }
        if (privateKey == null) {
            missing.add(property(prefix, "private-key"));
        }
        if (caBundle == null) {
            missing.add(property(prefix, "ca-bundle"));
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException(prefix + ".mode is mtls (the default), but " + String.join(", ", missing)
                    + (missing.size() == 1 ? " is" : " are") + " not set: this service's certificate chain, its PKCS#8 "
                    + "private key and the mesh CA bundle, PEM files (on Kubernetes mounted from a Secret; `moemesh up` "
                    + "writes them to <state-dir>/tls/). To run without TLS, set " + prefix + ".mode=plaintext ("
                    + envName(prefix, "mode") + "=plaintext) explicitly.");
        }
        readable(prefix, "cert-chain", certChain);
        readable(prefix, "private-key", privateKey);
        readable(prefix, "ca-bundle", caBundle);
        return this;
    }

    private static void readable(String prefix, String name, Path file) {
        if (!Files.isRegularFile(file) || !Files.isReadable(file)) {
            throw new IllegalArgumentException(property(prefix, name) + ": " + file + " is not a readable file");
        }
    }

    /** {@code moemesh.expert.tls.cert-chain (MOEMESH_EXPERT_TLS_CERT_CHAIN)}. */
    static String property(String prefix, String name) {
        return prefix + "." + name + " (" + envName(prefix, name) + ")";
    }

    private static String envName(String prefix, String name) {
        return (prefix + "." + name).replace('.', '_').replace('-', '_').toUpperCase(Locale.ROOT);
    }
}
