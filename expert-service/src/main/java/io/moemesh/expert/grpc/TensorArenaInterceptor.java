package io.moemesh.expert.grpc;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.ForwardingServerCall;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.moemesh.service.expert.ExpertBatchWire;
import io.moemesh.service.grpc.LocalPeer;
import io.moemesh.service.grpc.TensorArena;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Maps the shared-memory arena an ExpertBatch caller names in its {@code moemesh-tensor-arena} header, and answers
 * in the response headers at once ({@code mapped} or {@code refused: <why>}), so the caller can use it from its
 * next message on. Only on a peer-uid domain socket ({@link LocalPeer#PEER_UID}, set by the transport after the
 * kernel said the peer runs as this server's uid): the file must belong to that uid too ({@link TensorArena#open}
 * checks it and the rest). Anywhere else, or for a file that is not an arena, the stream goes on without one.
 */
final class TensorArenaInterceptor implements ServerInterceptor {
    private static final Logger log = LoggerFactory.getLogger(TensorArenaInterceptor.class);
    private static final Context.Key<TensorArena> ARENA = Context.key("moemesh-tensor-arena");

    /** The arena of the ExpertBatch stream being started (on the thread starting its handler), or null. */
    static TensorArena current() {
        return ARENA.get();
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                       ServerCallHandler<Q, R> next) {
        String offered = headers.get(ExpertBatchWire.ARENA_HEADER);
        if (offered == null
                || !call.getMethodDescriptor().getFullMethodName().equals(ExpertBatchWire.METHOD.getFullMethodName())) {
            return next.startCall(call, headers);
        }
        Integer peerUid = call.getAttributes().get(LocalPeer.PEER_UID);
        TensorArena arena = null;
        String answer;
        if (peerUid == null) {
            answer = "refused: only a caller on a peer-uid domain socket may share memory";
        } else {
            try {
                arena = TensorArena.open(offered, peerUid);
                answer = ExpertBatchWire.ARENA_MAPPED;
            } catch (IllegalArgumentException e) {
                answer = "refused: " + e.getMessage();
            }
        }
        if (arena == null) {
            log.info("ExpertBatch stream: shared-memory arena {}", answer);
        }
        Metadata reply = new Metadata();
        reply.put(ExpertBatchWire.ARENA_HEADER, ascii(answer));
        ServerCall<Q, R> answering = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
            private boolean sent;

            @Override
            public synchronized void sendHeaders(Metadata more) {
                // Sent once, right below; the stub's own call at its first reply adds nothing we need.
                if (!sent) {
                    sent = true;
                    reply.merge(more);
                    super.sendHeaders(reply);
                }
            }
        };
        answering.sendHeaders(new Metadata());
        return arena == null ? next.startCall(answering, headers)
                : Contexts.interceptCall(Context.current().withValue(ARENA, arena), answering, headers, next);
    }

    /** A header value is ASCII: anything else in a refusal reason (a path) becomes '?'. */
    private static String ascii(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            b.append(c >= 0x20 && c < 0x7f ? c : '?');
        }
        return b.toString();
    }
}
