package io.moemesh.service.grpc;

import java.util.Locale;

/**
 * How connections on a service's Unix domain socket are authenticated ({@code moemesh.<service>.unix-socket-security}
 * on a server; its same-host clients must use the same, {@link InstanceEndpoint#channelBuilder(io.grpc.ChannelCredentials,
 * UnixSocketSecurity)}, whose default is {@link #PEER_UID}).
 *
 * <p>{@link #PEER_UID} (the default) serves plaintext HTTP/2 and lets the kernel authenticate: a connection is kept
 * only if its peer's uid ({@code SO_PEERCRED}, unix(7)) is the server's own uid; its calls carry the identity
 * {@code MeshIdentity.LOCAL_OWNER}. On the local mesh every service runs as one uid and every private key of the mesh
 * is a file that uid can read (the state directory's {@code tls/}), so a peer proven to be that uid could present any
 * mesh certificate anyway: TLS on a same-host socket adds no authentication, only its cost (it nearly doubled the
 * per-layer hop, docs/performance.md). {@link #TLS} keeps the service's mutual TLS on the socket too, for whoever
 * runs services of one host as different uids.
 */
public enum UnixSocketSecurity {
    /** Plaintext; only peers of the server's own uid (kernel-verified) are served. */
    PEER_UID,
    /** The service's mutual TLS, as on its TCP port. */
    TLS;

    /** The property value: {@code peer-uid}, {@code tls}. */
    public String value() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }
}
