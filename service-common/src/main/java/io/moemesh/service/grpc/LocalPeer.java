package io.moemesh.service.grpc;

import io.grpc.Attributes;
import io.grpc.Grpc;
import io.grpc.ServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.InternalNettyServerCredentials;

/**
 * The transport attribute that marks a call received on a {@code peer-uid} domain socket from a process of the
 * server's own uid (verified by the kernel, {@link UnixSocketSecurity#PEER_UID}). Only the server's transport sets it,
 * before any byte of HTTP/2 is read; nothing a client sends can. {@code PeerIdentityInterceptor} turns it into the
 * identity {@code MeshIdentity.LOCAL_OWNER}.
 */
public final class LocalPeer {
    /** The peer's uid, present only on such a connection ({@code Grpc.TRANSPORT_ATTR_*} style, {@link Grpc}). */
    @Grpc.TransportAttr
    public static final Attributes.Key<Integer> PEER_UID = Attributes.Key.create("moemesh-local-peer-uid");

    private LocalPeer() {
    }

    /**
     * The server credentials of a {@link UnixSocketSecurity#PEER_UID} domain socket ({@link PeerUidNegotiator}: this
     * process's uid only, kernel-checked, then plaintext, calls marked with {@link #PEER_UID}), for a server built
     * outside {@link GrpcServerLifecycle} (the restore bench).
     *
     * @param where names the listener in log lines
     */
    public static ServerCredentials peerUidServerCredentials(String where) {
        return InternalNettyServerCredentials.create(new PeerUidNegotiator(SameUidRule.ofThisProcess(), where));
    }
}
