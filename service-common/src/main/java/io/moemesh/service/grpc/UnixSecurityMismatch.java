package io.moemesh.service.grpc;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import javax.net.ssl.SSLException;

/**
 * Names the likely cause when a domain socket call fails because its two ends disagree on
 * {@link UnixSocketSecurity}. Neither side can tell the other in-band: a TLS client on a plaintext ({@code peer-uid})
 * socket gets the server's HTTP/2 settings frame where a TLS record should be (grpc-netty reports
 * {@code NotSslRecordException} as "io exception"), and a plaintext client on a TLS socket sees the server close the
 * connection ("Network closed for unknown reason", the same a peer-uid server's refusal of another uid looks like).
 * Those UNAVAILABLE statuses get a sentence naming the setting; every other status passes unchanged.
 */
final class UnixSecurityMismatch implements ClientInterceptor {
    private final String target;
    private final UnixSocketSecurity security;

    UnixSecurityMismatch(String target, UnixSocketSecurity security) {
        this.target = target;
        this.security = security;
    }

    /** The status a call on this channel ends with: {@code status}, with the hint when it is a mismatch's. */
    Status explain(Status status) {
        if (status.getCode() != Status.Code.UNAVAILABLE) {
            return status;
        }
        if (security == UnixSocketSecurity.TLS && hasSslCause(status.getCause())) {
            return status.augmentDescription(target + ": the server did not answer this client's TLS handshake with "
                    + "TLS: it serves the socket in plaintext (its unix-socket-security is peer-uid, the default); set "
                    + "unix-socket-security to the same value on both ends");
        }
        if (security == UnixSocketSecurity.PEER_UID && status.getCause() == null && status.getDescription() != null
                && status.getDescription().startsWith("Network closed for unknown reason")) {
            return status.augmentDescription(target + ": the server closed the connection before HTTP/2 began: either "
                    + "it keeps TLS on the socket (its unix-socket-security is tls, while this client's is peer-uid, "
                    + "plaintext; set the same value on both ends), or it refused this process's uid (peer-uid serves "
                    + "only the server's own uid; see its log)");
        }
        return status;
    }

    private static boolean hasSslCause(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof SSLException) {
                return true;
            }
        }
        return false;
    }

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
        return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
            @Override
            public void start(Listener<R> listener, Metadata headers) {
                super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
                    @Override
                    public void onClose(Status status, Metadata trailers) {
                        super.onClose(explain(status), trailers);
                    }
                }, headers);
            }
        };
    }
}
