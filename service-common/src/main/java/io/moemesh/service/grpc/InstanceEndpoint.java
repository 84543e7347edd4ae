package io.moemesh.service.grpc;

import io.grpc.ChannelCredentials;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The gRPC address of a service of the mesh, in one of the two forms placement.proto's {@code Instance.endpoint}
 * allows: {@code host:port} (TCP; IPv6 hosts in brackets), or {@code unix:///absolute/path.sock}, a Unix domain
 * socket on the same host (the local mesh: no TCP/IP stack, no loopback checksums, per-hop syscalls on one socket
 * pair). The form chooses the transport. On TCP the channel uses the caller's credentials (mutual TLS by default). On a
 * domain socket it is plaintext by default ({@link UnixSocketSecurity#PEER_UID}: the server lets the kernel
 * authenticate the connecting uid instead of TLS), or the caller's credentials with {@link UnixSocketSecurity#TLS}
 * (mutual TLS holds on a domain socket too: peers are verified against the mesh CA, not by host name, see
 * {@code MeshCredentials}). Both ends must agree; a mismatch fails each call with UNAVAILABLE naming the setting.
 *
 * <p>A {@code unix:} endpoint is a URI, as grpc-java's target is (RFC 3986; gRPC's naming doc, "unix://absolute_path"):
 * a socket path with a character a URI path cannot hold (a space, {@code #}, {@code %}, {@code ?}, non-ASCII) is
 * percent-encoded in it ({@code unix:///tmp/my%20mesh/expert-0.sock}; {@link #unix(Path)} encodes, {@link #parse}
 * decodes). Unencoded, grpc-java found no name resolver for such a target and the channel could not be built.
 *
 * @param target    the string given to grpc-java's channel builder
 * @param transport {@code tcp} or {@code unix}: the dispatch latency metric's {@code transport} label
 * @param socket    the domain socket's path ({@code unix} only), else null
 */
public record InstanceEndpoint(String target, String transport, Path socket) {
    /**
     * Longest socket path in bytes: {@code sun_path} of {@code struct sockaddr_un} is 108 bytes on Linux, the
     * terminating NUL included (unix(7)); a longer path cannot be bound or connected to.
     */
    public static final int MAX_SOCKET_PATH_BYTES = 107;
    public static final String TCP = "tcp";
    public static final String UNIX = "unix";
    private static final String UNIX_PREFIX = "unix://";

    /**
     * @throws IllegalArgumentException naming the endpoint when it is neither {@code host:port} nor
     *     {@code unix:///absolute/path} (a relative path such as {@code unix://relative} would be read as a host
     *     name by URI rules, so it is refused rather than guessed), when a {@code unix:} endpoint is not a valid URI
     *     (a space, {@code #}, {@code %} or {@code ?} of its path not percent-encoded), or when the (decoded) socket
     *     path is longer than {@link #MAX_SOCKET_PATH_BYTES}
     */
    public static InstanceEndpoint parse(String endpoint) {
        if (endpoint == null || endpoint.isBlank()) {
            throw new IllegalArgumentException("endpoint is empty: expected host:port or unix:///absolute/path.sock");
        }
        if (endpoint.startsWith("unix:")) {
            if (!endpoint.startsWith(UNIX_PREFIX + "/")) {
                throw new IllegalArgumentException("endpoint \"" + endpoint + "\": a domain socket endpoint is "
                        + "unix:///absolute/path.sock (three slashes, an absolute path)");
            }
            Path socket = socketPath("endpoint \"" + endpoint + "\"", decodedPath(endpoint));
            return new InstanceEndpoint(endpoint, UNIX, socket);
        }
        if (!endpoint.matches("(\\[[0-9A-Fa-f:.]+]|[^:\\s/\\[\\]]+):\\d{1,5}")
                || Integer.parseInt(endpoint.substring(endpoint.lastIndexOf(':') + 1)) > 65535) {
            throw new IllegalArgumentException("endpoint \"" + endpoint + "\" is neither host:port nor "
                    + "unix:///absolute/path.sock");
        }
        return new InstanceEndpoint(endpoint, TCP, null);
    }

    /**
     * The endpoint of a domain socket: {@code unix://} + its absolute path, percent-encoded (every byte of its UTF-8
     * but RFC 3986's unreserved characters and {@code /}), so any legal path gives a target grpc-java can dial.
     */
    public static InstanceEndpoint unix(Path socket) {
        return parse(UNIX_PREFIX + percentEncoded(socket.toString()));
    }

    /**
     * The socket path of a {@code unix:///} endpoint, percent-decoded as grpc-java's {@code unix} name resolver
     * decodes it ({@code UdsNameResolverProvider} takes the target URI's decoded path).
     */
    private static String decodedPath(String endpoint) {
        URI uri;
        try {
            uri = new URI(endpoint);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("endpoint \"" + endpoint + "\" is not a valid URI (" + e.getReason()
                    + " at index " + e.getIndex() + "): percent-encode a space, #, % or ? of the socket path (%20, "
                    + "%23, %25, %3F)", e);
        }
        if (uri.getRawQuery() != null || uri.getRawFragment() != null) {
            throw new IllegalArgumentException("endpoint \"" + endpoint + "\": a ? or # in the socket path must be "
                    + "percent-encoded (%3F, %23); a domain socket endpoint has no query or fragment");
        }
        return uri.getPath();
    }

    private static String percentEncoded(String path) {
        StringBuilder sb = new StringBuilder(path.length());
        for (byte b : path.getBytes(StandardCharsets.UTF_8)) {
            char c = (char) (b & 0xff);
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || "-._~/".indexOf(c) >= 0) {
                sb.append(c);
            } else {
                sb.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 0xf, 16)));
            }
        }
        return sb.toString();
    }

    /**
     * Checks a domain socket path given as a setting: absolute, not empty, at most {@link #MAX_SOCKET_PATH_BYTES}
     * bytes of UTF-8.
     *
     * @param what names the setting in the error (e.g. the property)
     * @throws IllegalArgumentException naming {@code what} and the limit
     */
    public static Path socketPath(String what, String path) {
        if (path == null || path.isBlank()) {
            throw new IllegalArgumentException(what + ": the socket path is empty");
        }
        Path p = Path.of(path);
        if (!p.isAbsolute()) {
            throw new IllegalArgumentException(what + ": the socket path must be absolute, got \"" + path + "\"");
        }
        if (p.getFileName() == null || path.endsWith("/")) {
            throw new IllegalArgumentException(what + ": the socket path names no socket file, got \"" + path + "\"");
        }
        int bytes = path.getBytes(StandardCharsets.UTF_8).length;
        if (bytes > MAX_SOCKET_PATH_BYTES) {
            throw new IllegalArgumentException(what + ": the socket path is " + bytes + " bytes long; a Unix domain "
                    + "socket path may have at most " + MAX_SOCKET_PATH_BYTES + " (sun_path is 108 bytes with its NUL)");
        }
        return p.normalize();
    }

    public boolean isUnix() {
        return socket != null;
    }

    /**
     * {@link #channelBuilder(ChannelCredentials, UnixSocketSecurity)} with the default
     * {@link UnixSocketSecurity#PEER_UID}: plaintext on a domain socket, {@code credentials} on TCP.
     */
    public ManagedChannelBuilder<?> channelBuilder(ChannelCredentials credentials) {
        return channelBuilder(credentials, UnixSocketSecurity.PEER_UID);
    }

    /**
     * A channel builder for this endpoint: grpc-netty over TCP with {@code credentials}, or over an epoll domain
     * socket (grpc-java's {@code UdsNettyChannelProvider}, picked by the {@code unix} scheme's name resolver, on
     * Netty's shared epoll event loops), plaintext when {@code unixSecurity} is {@link UnixSocketSecurity#PEER_UID}
     * and with {@code credentials} when it is {@link UnixSocketSecurity#TLS}. A domain socket channel's UNAVAILABLE
     * failures that come from a security mismatch with the server (one end TLS, the other not) say so
     * ({@link UnixSecurityMismatch}).
     *
     * @throws IllegalStateException naming the endpoint when it is a domain socket and Netty's native epoll
     *     transport is not available here (not Linux, or the native library could not load)
     */
    public ManagedChannelBuilder<?> channelBuilder(ChannelCredentials credentials, UnixSocketSecurity unixSecurity) {
        if (!isUnix()) {
            return NettyChannelBuilder.forTarget(target, credentials);
        }
        requireEpoll(target);
        ManagedChannelBuilder<?> builder = Grpc.newChannelBuilder(target,
                unixSecurity == UnixSocketSecurity.TLS ? credentials : InsecureChannelCredentials.create());
        builder.intercept(new UnixSecurityMismatch(target, unixSecurity));
        if (builder instanceof NettyChannelBuilder netty) {
            // grpc-netty asks every channel for TCP keep-alive; a domain socket has none, and Netty would log
            // "Unknown channel option 'SO_KEEPALIVE'" at each connect (grpc-java#10408). A null value removes it.
            netty.withOption(ChannelOption.SO_KEEPALIVE, null);
        }
        return builder;
    }

    /** Whether domain sockets can be used here (Linux with Netty's native epoll transport). */
    public static boolean domainSocketsAvailable() {
        return Epoll.isAvailable();
    }

    static void requireEpoll(String what) {
        if (!Epoll.isAvailable()) {
            Throwable cause = Epoll.unavailabilityCause();
            throw new IllegalStateException(what + ": a Unix domain socket needs Netty's native epoll transport, "
                    + "which is not available on this host (" + (cause == null ? "unknown reason" : cause.getMessage())
                    + "); use a host:port endpoint", cause);
        }
    }
}
