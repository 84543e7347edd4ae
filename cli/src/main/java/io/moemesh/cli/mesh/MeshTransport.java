package io.moemesh.cli.mesh;

import io.moemesh.service.grpc.InstanceEndpoint;
import java.util.Locale;

/**
 * How the gateway (and the router) of a local mesh reach the expert-services: over loopback TCP, or over a Unix
 * domain socket per instance ({@code unix:///path} endpoints in the placement; grpc-netty over epoll), which skips
 * the TCP/IP stack on every per-layer hop. The expert-services keep their TCP port either way (readiness checks,
 * tools). Kubernetes meshes are always TCP: their pods do not share a host.
 */
public enum MeshTransport {
    TCP,
    UNIX;

    /** {@code up}'s default: domain sockets where Netty's epoll transport works (Linux), TCP elsewhere. */
    public static MeshTransport hostDefault() {
        return InstanceEndpoint.domainSocketsAvailable() ? UNIX : TCP;
    }

    /**
     * @param value {@code tcp} or {@code unix}, as {@code --transport} takes it
     * @throws IllegalArgumentException naming the option for any other value, and for {@code unix} on a host
     *     without epoll
     */
    public static MeshTransport parse(String value) {
        MeshTransport t = switch (value == null ? "" : value.toLowerCase(Locale.ROOT)) {
            case "tcp" -> TCP;
            case "unix" -> UNIX;
            default -> throw new IllegalArgumentException("--transport must be tcp or unix, got \"" + value + "\"");
        };
        if (t == UNIX && !InstanceEndpoint.domainSocketsAvailable()) {
            throw new IllegalArgumentException("--transport unix needs Unix domain sockets over Netty's epoll "
                    + "transport, which this host does not have (Linux only); use --transport tcp");
        }
        return t;
    }

    /** The name {@code --transport} and the bench tables use. */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }
}
