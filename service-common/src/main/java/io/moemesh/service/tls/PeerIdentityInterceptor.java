package io.moemesh.service.tls;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Optional;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;

/**
 * Puts the verified peer's {@link MeshIdentity} into the gRPC {@link Context} of every call, for handlers that
 * authorize by identity ({@link #current()}). The identity is read from the leaf certificate of the call's TLS
 * session ({@link Grpc#TRANSPORT_ATTR_SSL_SESSION}); the handshake has already verified that it chains to the
 * mesh CA (client auth REQUIRE), so nothing the client sends in metadata can claim an identity. Without TLS
 * (plaintext mode) or without a {@code spiffe://moemesh/} SAN, calls have no identity.
 */
public final class PeerIdentityInterceptor implements ServerInterceptor {
    private static final Context.Key<MeshIdentity> IDENTITY = Context.key("moemesh-peer-identity");

    /** The identity of the peer of the call in progress (on the thread running its handler). */
    public static Optional<MeshIdentity> current() {
        return Optional.ofNullable(IDENTITY.get());
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        MeshIdentity identity = identity(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
        if (identity == null) {
            return next.startCall(call, headers);
        }
        return Contexts.interceptCall(Context.current().withValue(IDENTITY, identity), call, headers, next);
    }

    private static MeshIdentity identity(SSLSession session) {
        if (session == null) {
            return null;
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
