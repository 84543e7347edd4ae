package io.moemesh.service.grpc;

import io.grpc.Attributes;
import io.grpc.ChannelLogger;
import io.grpc.netty.shaded.io.grpc.netty.GrpcHttp2ConnectionHandler;
import io.grpc.netty.shaded.io.grpc.netty.InternalProtocolNegotiationEvent;
import io.grpc.netty.shaded.io.grpc.netty.InternalProtocolNegotiator;
import io.grpc.netty.shaded.io.grpc.netty.InternalProtocolNegotiators;
import io.grpc.netty.shaded.io.grpc.netty.ProtocolNegotiationEvent;
import io.grpc.netty.shaded.io.netty.channel.Channel;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandler;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandlerContext;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.PeerCredentials;
import io.grpc.netty.shaded.io.netty.util.AsciiString;
import java.io.IOException;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server side of {@link UnixSocketSecurity#PEER_UID}: grpc-netty's plaintext negotiator behind a check of the
 * connecting process's credentials. grpc-java's hook for per-connection checks before any call is the protocol
 * negotiator (a {@code ServerTransportFilter} never sees the Netty channel); this one asks the accepted epoll domain
 * socket for {@code SO_PEERCRED} ({@link EpollDomainSocketChannel#peerCredentials()}), closes the connection with a
 * logged reason when {@link SameUidRule} refuses the peer, and otherwise hands the connection to the plaintext
 * negotiator with {@link LocalPeer#PEER_UID} in its transport attributes. Nothing is read from the socket before the
 * check: a refused peer gets no HTTP/2 settings frame, only the close.
 */
final class PeerUidNegotiator implements InternalProtocolNegotiator.ProtocolNegotiator {
    private static final Logger log = LoggerFactory.getLogger(PeerUidNegotiator.class);

    private final InternalProtocolNegotiator.ProtocolNegotiator plaintext = InternalProtocolNegotiators.serverPlaintext();
    private final SameUidRule rule;
    private final String where;

    /** @param where names the listener in log lines (the setting and the path) */
    PeerUidNegotiator(SameUidRule rule, String where) {
        this.rule = rule;
        this.where = where;
    }

    @Override
    public AsciiString scheme() {
        return plaintext.scheme();
    }

    @Override
    public ChannelHandler newHandler(GrpcHttp2ConnectionHandler grpcHandler) {
        return new CheckPeer(plaintext.newHandler(grpcHandler), grpcHandler.getNegotiationLogger());
    }

    @Override
    public void close() {
        plaintext.close();
    }

    /** Why {@code channel}'s peer is refused, or empty when it is served. */
    Optional<String> refusal(Channel channel) {
        if (!(channel instanceof EpollDomainSocketChannel socket)) {
            return Optional.of("not an epoll domain socket (" + channel.getClass().getSimpleName() + "), so the peer's "
                    + "uid is unknown");
        }
        PeerCredentials peer;
        try {
            peer = socket.peerCredentials();
        } catch (IOException e) {
            return Optional.of("cannot read the peer's credentials (SO_PEERCRED: " + e.getMessage() + ")");
        }
        return rule.refusal(peer.pid(), peer.uid());
    }

    private final class CheckPeer extends InternalProtocolNegotiators.ProtocolNegotiationHandler {
        CheckPeer(ChannelHandler next, ChannelLogger logger) {
            super(next, "peer-uid", logger);
        }

        @Override
        protected void protocolNegotiationEventTriggered(ChannelHandlerContext ctx) {
            Optional<String> refused = refusal(ctx.channel());
            if (refused.isPresent()) {
                log.warn("{}: connection refused: {}", where, refused.get());
                ctx.close();
                return;
            }
            ProtocolNegotiationEvent pne = getProtocolNegotiationEvent();
            Attributes attrs = InternalProtocolNegotiationEvent.getAttributes(pne).toBuilder()
                    .set(LocalPeer.PEER_UID, rule.ownUid()).build();
            replaceProtocolNegotiationEvent(InternalProtocolNegotiationEvent.withAttributes(pne, attrs));
            fireProtocolNegotiationEvent(ctx);
        }
    }
}
