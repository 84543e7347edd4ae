package io.moemesh.service.tls;

import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ServerCredentials;
import io.grpc.TlsChannelCredentials;
import io.grpc.TlsServerCredentials;
import io.grpc.netty.shaded.io.netty.handler.ssl.OpenSsl;
import io.grpc.util.AdvancedTlsX509KeyManager;
import io.grpc.util.AdvancedTlsX509TrustManager;
import io.moemesh.service.settings.SettingRefusedException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * gRPC credentials of one service from its {@link TlsSettings}: the server side of its internal port and the
 * channel side of its calls to other services, both over one key manager (its certificate and key) and one
 * trust manager (the mesh CA bundle). With a reload period both re-read their files on a daemon thread, so a
 * rotated Secret is served and presented without a restart; {@link #close()} stops that. In plaintext mode
 * they are grpc-java's insecure credentials.
 *
 * <p>Peers are verified against the mesh CA only (never the system roots). A client does not check the
 * server's host name: expert endpoints are pod IPs found by discovery on Kubernetes, and in a mesh with its
 * own CA the certificate is the identity (as SPIFFE and service meshes do); authorization is by
 * {@link MeshIdentity} where it matters (LoadAssignment).
 *
 * <p>The TLS engine is grpc-netty-shaded's default, OpenSSL through its bundled netty-tcnative (BoringSSL) whenever
 * that loads ({@code OpenSsl.isAvailable()}), else the JDK's; {@link #engine()} says which, logged once at load, and
 * {@link PeerIdentityInterceptor} logs the first session's protocol and cipher suite. Measured here (TlsEngineTest):
 * BoringSSL, TLS 1.3, {@code TLS_AES_128_GCM_SHA256}. BoringSSL does not let TLS 1.3 suites be configured; it
 * prefers AES-128-GCM on hardware with AES instructions (and ChaCha20-Poly1305 without them), which is already the
 * cheapest AEAD of the three without weakening anything, so the suites are left at its defaults.
 */
public final class MeshCredentials implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(MeshCredentials.class);
    private static final AtomicBoolean ENGINE_LOGGED = new AtomicBoolean();
    private final ServerCredentials server;
    private final ChannelCredentials channel;
    private final boolean mtls;
    private final List<AutoCloseable> reloads;
    private final ScheduledExecutorService reloader;

    private MeshCredentials(ServerCredentials server, ChannelCredentials channel, boolean mtls,
                            List<AutoCloseable> reloads, ScheduledExecutorService reloader) {
        this.server = server;
        this.channel = channel;
        this.mtls = mtls;
        this.reloads = reloads;
        this.reloader = reloader;
    }

    /**
     * Loads the files of {@code settings} (validated as the properties under {@code prefix}, which the error
     * messages name).
     *
     * @throws IllegalArgumentException when a setting is missing or a file is not what it must be (a file:
     *                                  {@link SettingRefusedException} naming its property, as services load these
     *                                  while they start)
     */
    public static MeshCredentials load(TlsSettings settings, String prefix) {
        return load(settings, prefix, () -> Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("moemesh-tls-reload").daemon().factory()));
    }

    /** With the executor that runs the re-reads (tests run them on demand); shut down by {@link #close()}. */
    static MeshCredentials load(TlsSettings settings, String prefix, Supplier<ScheduledExecutorService> reloaders) {
        settings.validated(prefix);
        if (!settings.isMtls()) {
            return new MeshCredentials(InsecureServerCredentials.create(), InsecureChannelCredentials.create(), false,
                    List.of(), null);
        }
        // Parsed here first so that a wrong file is reported by its property, not by a handshake later.
        List<X509Certificate> chain = parse(prefix, "cert-chain", () -> PemFiles.readCertificates(settings.certChain()));
        parse(prefix, "private-key", () -> PemFiles.readPrivateKey(settings.privateKey()));
        parse(prefix, "ca-bundle", () -> PemFiles.readCertificates(settings.caBundle()));
        if (chain.getFirst().getBasicConstraints() >= 0) {
            throw new SettingRefusedException(prefix + ".cert-chain", TlsSettings.property(prefix, "cert-chain") + ": "
                    + settings.certChain() + " starts with a CA certificate; it must start with this service's own "
                    + "certificate");
        }
        AdvancedTlsX509KeyManager keys = new AdvancedTlsX509KeyManager();
        AdvancedTlsX509TrustManager trust;
        List<AutoCloseable> reloads = new ArrayList<>();
        ScheduledExecutorService reloader = null;
        try {
            // CERTIFICATE_ONLY: the chain must lead to the CA bundle; no host-name check (see the class comment).
            trust = AdvancedTlsX509TrustManager.newBuilder()
                    .setVerification(AdvancedTlsX509TrustManager.Verification.CERTIFICATE_ONLY_VERIFICATION).build();
            long period = settings.reloadPeriod().toSeconds();
            if (period == 0) {
                keys.updateIdentityCredentials(settings.certChain().toFile(), settings.privateKey().toFile());
                trust.updateTrustCredentials(settings.caBundle().toFile());
            } else {
                reloader = reloaders.get();
                reloads.add(keys.updateIdentityCredentials(settings.certChain().toFile(), settings.privateKey().toFile(),
                        period, TimeUnit.SECONDS, reloader)::close);
                reloads.add(trust.updateTrustCredentials(settings.caBundle().toFile(), period, TimeUnit.SECONDS,
                        reloader)::close);
            }
        } catch (IOException | GeneralSecurityException e) {
            if (reloader != null) {
                reloader.shutdownNow();
            }
            throw new SettingRefusedException(prefix + ".cert-chain", prefix + ": cannot load " + settings.certChain()
                    + ", "
                    + settings.privateKey() + " and " + settings.caBundle() + " (" + e.getMessage() + ")", e);
        }
        ServerCredentials server = TlsServerCredentials.newBuilder().keyManager(keys).trustManager(trust)
                .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE).build();
        ChannelCredentials channel = TlsChannelCredentials.newBuilder().keyManager(keys).trustManager(trust).build();
        if (ENGINE_LOGGED.compareAndSet(false, true)) {
            log.info("mutual TLS engine: {}", engine());
        }
        return new MeshCredentials(server, channel, true, List.copyOf(reloads), reloader);
    }

    private interface Read<T> {
        T read();
    }

    /**
     * The engine grpc-netty-shaded's TLS runs on: {@code OpenSSL (BoringSSL ...)} when its bundled tcnative loads, else
     * {@code JDK (OpenSSL unavailable: ...)}.
     */
    public static String engine() {
        if (OpenSsl.isAvailable()) {
            return "OpenSSL (" + OpenSsl.versionString() + ", grpc-netty-shaded's netty-tcnative)";
        }
        Throwable why = OpenSsl.unavailabilityCause();
        return "JDK (OpenSSL unavailable: " + (why == null ? "unknown reason" : why.getMessage()) + ")";
    }

    private static <T> T parse(String prefix, String property, Read<T> read) {
        try {
            return read.read();
        } catch (IllegalArgumentException | UncheckedIOException e) {
            throw new SettingRefusedException(prefix + "." + property, TlsSettings.property(prefix, property) + ": "
                    + e.getMessage(), e);
        }
    }

    /** Credentials of this service's internal gRPC server: mutual TLS (client certificate required) or plaintext. */
    public ServerCredentials server() {
        return server;
    }

    /** Credentials of this service's channels to other services of the mesh. */
    public ChannelCredentials channel() {
        return channel;
    }

    public boolean isMtls() {
        return mtls;
    }

    /** Stops re-reading the files; credentials already handed out keep the certificate they have. */
    @Override
    public void close() {
        for (AutoCloseable r : reloads) {
            try {
                r.close();
            } catch (Exception ignored) {
                // cancelling a scheduled re-read cannot fail in a way worth reporting at shutdown
            }
        }
        if (reloader != null) {
            reloader.shutdownNow();
        }
    }
}
