package io.moemesh.service.tls;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.moemesh.service.grpc.LocalPeer;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Puts the verified peer's {@link MeshIdentity} into the gRPC {@link Context} of every call, for handlers that
 * authorize by identity ({@link #current()}). The identity is read from the leaf certificate of the call's TLS
 * session ({@link Grpc#TRANSPORT_ATTR_SSL_SESSION}); the handshake has already verified that it chains to the
 * mesh CA (client auth REQUIRE), so nothing the client sends in metadata can claim an identity. A call on a
 * {@code peer-uid} domain socket, whose peer the kernel verified to be the server's own uid (the transport attribute
 * {@link LocalPeer#PEER_UID}, set by the server's transport only), has {@link MeshIdentity#LOCAL_OWNER}. Without TLS
 * (plaintext mode) or without a {@code spiffe://moemesh/} SAN, calls have no identity.
 */
public final class PeerIdentityInterceptor implements ServerInterceptor {
    private static final Logger log = LoggerFactory.getLogger(PeerIdentityInterceptor.class);
    private static final Context.Key<MeshIdentity> IDENTITY = Context.key("moemesh-peer-identity");
    /** The first TLS session's protocol and cipher suite are logged once per JVM (what the handshake really chose). */
    private static final AtomicBoolean SESSION_LOGGED = new AtomicBoolean();

    /** The identity of the peer of the call in progress (on the thread running its handler). */
    public static Optional<MeshIdentity> current() {
        return Optional.ofNullable(IDENTITY.get());
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        MeshIdentity identity = call.getAttributes().get(LocalPeer.PEER_UID) != null ? MeshIdentity.LOCAL_OWNER
                : identity(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
        if (identity == null) {
            return next.startCall(call, headers);
        }
        return Contexts.interceptCall(Context.current().withValue(IDENTITY, identity), call, headers, next);
    }

    private static MeshIdentity identity(SSLSession session) {
        if (session == null) {
            return null;
        }
        if (SESSION_LOGGED.compareAndSet(false, true)) {
            log.info("first mutual TLS session: {} {} on {}", session.getProtocol(), session.getCipherSuite(),
                    MeshCredentials.engine());
        }
        Certificate[] chain;
        try {
            chain = session.getPeerCertificates();
        } catch (SSLPeerUnverifiedException e) {
            return null;
        }
        return chain.length > 0 && chain[0] instanceof X509Certificate leaf ? MeshIdentity.of(leaf).orElse(null) : null;
    }
}
