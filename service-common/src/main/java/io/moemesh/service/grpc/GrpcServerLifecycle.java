package io.moemesh.service.grpc;

import com.google.common.util.concurrent.MoreExecutors;
import io.grpc.BindableService;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallExecutorSupplier;
import io.grpc.ServerCredentials;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.TlsServerCredentials;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.InternalNettyServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollIoHandler;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;

/**
 * Runs a plain grpc-java Netty server inside a Spring context: started after the beans it serves, stopped
 * gracefully first (health NOT_SERVING, no new calls, open Health/Watch streams ended with UNAVAILABLE after their
 * NOT_SERVING, other in-flight calls get {@code shutdownGrace}). gRPC health
 * v1 and reflection v1 are always on. Port 0 binds a free port; {@link #port()} reads it back. Every service's
 * requests are parsed by {@link RequestParsingGuard}: an unparseable message is INVALID_ARGUMENT, not UNKNOWN, and so is
 * a one-message call without its request (with {@link #resettableCalls()}, one with a second request too).
 * The server's {@link ServerCredentials} apply to every service on the port, health and reflection included: with
 * mutual TLS ({@code io.moemesh.service.tls.MeshCredentials}) a client without the mesh's certificate fails the
 * handshake before any call; with {@code InsecureServerCredentials} the port is plaintext.
 *
 * <p>{@link #alsoOnUnixSocket} adds a second listener on a Unix domain socket (grpc-netty over epoll), serving the
 * same services, health and reflection: same-host clients (the local mesh's gateway) skip the TCP/IP stack; the TCP
 * port stays for everyone else. By default ({@link UnixSocketSecurity#PEER_UID}) the socket is plaintext and serves
 * only processes of this server's uid, checked by the kernel ({@link PeerUidNegotiator}); its directory must be
 * accessible to its owner only and the socket file is made 0600. With {@link UnixSocketSecurity#TLS} it keeps the
 * server's credentials (mutual TLS). A socket file left by a killed process is removed at start when nothing answers
 * on it ({@link UnixSocketFile}); a live listener there is a startup error.
 *
 * <p>Keepalive, on both listeners: after {@link #KEEPALIVE_TIME} without a byte from a client the server pings it, and
 * closes the connection when no answer comes within {@link #KEEPALIVE_TIMEOUT}, cancelling its calls. A client that
 * vanished without closing its connection (its node lost, a network partition) is otherwise noticed only by TCP's own
 * keepalive, two hours by default: until then its streams stay open (a gateway would stay the router's watcher, which
 * Replan waits for). Clients may ping every {@link #PERMIT_KEEPALIVE_TIME} or less often (the gateway pings every 30 s),
 * with or without calls.
 */
public final class GrpcServerLifecycle implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(GrpcServerLifecycle.class);
    /** A client connection idle this long is pinged. */
    public static final Duration KEEPALIVE_TIME = Duration.ofSeconds(30);
    /** A ping unanswered this long closes the connection: a silent client is dropped within about 40 s. */
    public static final Duration KEEPALIVE_TIMEOUT = Duration.ofSeconds(10);
    /** The most often a client may ping; more often is answered with GOAWAY (too_many_pings). */
    public static final Duration PERMIT_KEEPALIVE_TIME = Duration.ofSeconds(10);

    private final String name;
    private final String host;
    private final int requestedPort;
    private final ServerCredentials credentials;
    private final int maxInboundMessageBytes;
    private final Duration shutdownGrace;
    private final List<BindableService> services;
    private final List<String> serviceNames;
    private final List<ServerInterceptor> interceptors;
    private final Set<String> transportThreadMethods;
    /** Replaced on stop: a stopped manager is terminal, and Spring may start a stopped context again. */
    private volatile HealthStatusManager health = new HealthStatusManager();
    /** The open Health/Watch calls, ended at stop; replaced with the health manager. */
    private volatile HealthWatchCloser healthWatches = new HealthWatchCloser();
    private volatile Server server;
    private volatile boolean servingOnStart = true;
    private Path unixSocket;
    private String unixSocketSetting;
    private UnixSocketSecurity unixSecurity = UnixSocketSecurity.PEER_UID;
    private String unixSecuritySetting;
    private volatile Server unixServer;
    private volatile EventLoopGroup unixLoops;
    /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of each connection; 0 = Netty's default (no limit). */
    private int maxCallsPerConnection;
    private boolean resettableCalls;
    /**
     * With {@link #heldRequests}: the bound on the half-close of the one-message calls this server guards itself
     * (health, reflection, the services not guarded already), so none holds its bytes against the budget for ever.
     */
    private RequestParsingGuard.HalfCloseBound halfCloseBound;
    private Duration keepAliveTime = KEEPALIVE_TIME;
    private Duration keepAliveTimeout = KEEPALIVE_TIMEOUT;
    /** The budget of request bytes held before half-closes, or null (none). */
    private HeldRequestBytes heldRequests;

    public GrpcServerLifecycle(String name, String host, int port, ServerCredentials credentials,
                               int maxInboundMessageBytes, Duration shutdownGrace, List<BindableService> services,
                               List<ServerInterceptor> interceptors) {
        this(name, host, port, credentials, maxInboundMessageBytes, shutdownGrace, services, interceptors, Set.of());
    }

    /**
     * @param transportThreadMethods full method names whose call callbacks run on the Netty event loop that read
     *     the message instead of being handed to gRPC's default executor (from the call's start on: grpc-java
     *     looks the method up on the default executor). Only for handlers that never block (the
     *     ExpertBatch stream decodes and queues to its own workers): each hand-off is a thread wake-up on the
     *     per-layer hop, tens of µs on a busy host.
     */
    public GrpcServerLifecycle(String name, String host, int port, ServerCredentials credentials,
                               int maxInboundMessageBytes, Duration shutdownGrace, List<BindableService> services,
                               List<ServerInterceptor> interceptors, Set<String> transportThreadMethods) {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException(name + ": gRPC port must be in [0, 65535], got " + port);
        }
        this.name = name;
        this.host = host;
        this.requestedPort = port;
        this.credentials = Objects.requireNonNull(credentials, "credentials");
        this.maxInboundMessageBytes = maxInboundMessageBytes;
        this.shutdownGrace = shutdownGrace;
        this.services = List.copyOf(services);
        this.serviceNames = this.services.stream().map(s -> s.bindService().getServiceDescriptor().getName()).toList();
        this.interceptors = List.copyOf(interceptors);
        this.transportThreadMethods = Set.copyOf(transportThreadMethods);
    }

    /**
     * Call before {@link #start()}: listen on the Unix domain socket {@code socket} too.
     *
     * @param setting names the setting the path came from in errors (e.g. {@code moemesh.expert.grpc-unix-socket})
     * @throws IllegalArgumentException naming {@code setting} when the path is relative, empty or longer than
     *     {@link InstanceEndpoint#MAX_SOCKET_PATH_BYTES} bytes
     */
    public GrpcServerLifecycle alsoOnUnixSocket(Path socket, String setting) {
        return alsoOnUnixSocket(socket, setting, UnixSocketSecurity.PEER_UID, "unix-socket-security");
    }

    /**
     * Call before {@link #start()}: listen on the Unix domain socket {@code socket} too, secured by {@code security}.
     *
     * @param setting         names the socket path's setting in errors (e.g. {@code moemesh.expert.grpc-unix-socket})
     * @param security        {@link UnixSocketSecurity#PEER_UID}: plaintext, this uid's processes only (the socket's
     *                        directory must then be accessible to its owner only: a startup error names
     *                        {@code setting} otherwise); {@link UnixSocketSecurity#TLS}: this server's credentials, which
     *                        must then be TLS ones (a startup error names {@code securitySetting} otherwise)
     * @param securitySetting names the security's setting in errors (e.g. {@code moemesh.expert.unix-socket-security})
     * @throws IllegalArgumentException naming {@code setting} when the path is relative, empty or longer than
     *     {@link InstanceEndpoint#MAX_SOCKET_PATH_BYTES} bytes
     */
    public GrpcServerLifecycle alsoOnUnixSocket(Path socket, String setting, UnixSocketSecurity security,
                                                String securitySetting) {
        this.unixSocket = InstanceEndpoint.socketPath(setting, socket == null ? null : socket.toString());
        this.unixSocketSetting = setting;
        this.unixSecurity = Objects.requireNonNull(security, "security");
        this.unixSecuritySetting = securitySetting;
        return this;
    }

    /**
     * Call before {@link #start()}: each client connection may have at most {@code calls} calls open at once (HTTP/2
     * SETTINGS_MAX_CONCURRENT_STREAMS, on the TCP port and the Unix socket). A client's further calls wait in the
     * client until one ends (grpc-java queues them; none is refused), so calls a client leaves open cannot pile up
     * without bound on one connection.
     *
     * @param setting names the setting in the error
     * @throws IllegalArgumentException naming {@code setting} when {@code calls} < 1
     */
    public GrpcServerLifecycle maxCallsPerConnection(int calls, String setting) {
        if (calls < 1) {
            throw new IllegalArgumentException(setting + " must be ≥ 1, got " + calls);
        }
        this.maxCallsPerConnection = calls;
        return this;
    }

    /**
     * Call before {@link #start()}: ping a client connection idle for {@code time}, and close it when the ping is not
     * answered within {@code timeout} (by default {@link #KEEPALIVE_TIME} and {@link #KEEPALIVE_TIMEOUT}; grpc-java raises a
     * time under 10 s to 10 s, so a test can shorten only the timeout below that).
     *
     * @throws IllegalArgumentException when either is not positive
     */
    public GrpcServerLifecycle keepAlive(Duration time, Duration timeout) {
        if (time.isNegative() || time.isZero() || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException(name + ": keepalive time and timeout must be > 0, got " + time + " and "
                    + timeout);
        }
        this.keepAliveTime = time;
        this.keepAliveTimeout = timeout;
        return this;
    }

    /** Call before {@link #start()}: {@link CallReset#current()} works in every call of this server. */
    public GrpcServerLifecycle resettableCalls() {
        this.resettableCalls = true;
        return this;
    }

    /**
     * Call before {@link #start()}: as {@link #resettableCalls()}, and the request bytes this server's one-message
     * calls hold before their half-close (on the TCP port and the Unix socket together) are bounded by
     * {@code heldRequests}: a call whose bytes would pass it is closed RESOURCE_EXHAUSTED and reset
     * ({@link CallReset}); the one-message calls the server guards itself (health, reflection, services not guarded
     * already) end after {@code halfCloseBound} without their half-close, so none holds bytes for ever.
     */
    public GrpcServerLifecycle resettableCalls(HeldRequestBytes heldRequests,
                                               RequestParsingGuard.HalfCloseBound halfCloseBound) {
        this.resettableCalls = true;
        this.heldRequests = Objects.requireNonNull(heldRequests, "heldRequests");
        this.halfCloseBound = Objects.requireNonNull(halfCloseBound, "halfCloseBound");
        return this;
    }

    @Override
    public void start() {
        NettyServerBuilder b = configure(NettyServerBuilder.forAddress(new InetSocketAddress(host, requestedPort),
                credentials));
        // Before the port opens: grpc's HealthStatusManager starts at SERVING, which a startNotServing server must
        // never report, not even between its bind and this method's end.
        setServing(servingOnStart);
        try {
            server = b.build().start();
        } catch (IOException e) {
            throw new UncheckedIOException(name + ": cannot bind gRPC on " + host + ":" + requestedPort, e);
        }
        String security = credentials instanceof TlsServerCredentials ? "mutual TLS" : "plaintext";
        if (unixSocket != null) {
            try {
                startUnix();
            } catch (RuntimeException e) {
                server.shutdownNow();
                server = null;
                throw e;
            }
            log.info("{} gRPC listening on {} ({})", name, InstanceEndpoint.unix(unixSocket).target(),
                    unixSecurity == UnixSocketSecurity.PEER_UID ? "plaintext, served to this uid only, kernel-checked"
                            : security);
        }
        log.info("{} gRPC listening on {}:{} ({})", name, host, server.getPort(), security);
    }

    private void startUnix() {
        InstanceEndpoint.requireEpoll(unixSocketSetting + "=" + unixSocket);
        String where = unixSocketSetting + "=" + unixSocket;
        ServerCredentials socketCredentials;
        if (unixSecurity == UnixSocketSecurity.PEER_UID) {
            UnixSocketFile.prepareOwnerOnly(unixSocket, unixSocketSetting, unixSecuritySetting);
            socketCredentials = InternalNettyServerCredentials.create(
                    new PeerUidNegotiator(SameUidRule.ofThisProcess(), where));
        } else {
            if (!(credentials instanceof TlsServerCredentials)) {
                throw new IllegalStateException(name + ": " + unixSecuritySetting + "=tls keeps this service's TLS on "
                        + where + ", but the service runs without TLS (its tls.mode is plaintext); set "
                        + unixSecuritySetting + "=peer-uid or enable mutual TLS");
            }
            UnixSocketFile.prepare(unixSocket, unixSocketSetting);
            socketCredentials = credentials;
        }
        EventLoopGroup loops = new MultiThreadIoEventLoopGroup(Math.max(2, Runtime.getRuntime().availableProcessors()),
                new DefaultThreadFactory("grpc-uds", true), EpollIoHandler.newFactory());
        try {
            unixServer = configure(NettyServerBuilder.forAddress(new DomainSocketAddress(unixSocket.toString()),
                            socketCredentials)
                    .channelType(EpollServerDomainSocketChannel.class)
                    // grpc-netty asks every accepted channel for TCP keep-alive, which a domain socket lacks
                    // (Netty logs "Unknown channel option" per connection, grpc-java#10408); null removes it.
                    .withChildOption(ChannelOption.SO_KEEPALIVE, null)
                    .bossEventLoopGroup(loops).workerEventLoopGroup(loops)).build().start();
            if (unixSecurity == UnixSocketSecurity.PEER_UID) {
                // Defence in depth behind the directory's mode and the peer check: connect(2) needs write access.
                UnixSocketFile.ownerOnly(unixSocket, unixSocketSetting);
            }
            unixLoops = loops;
        } catch (IOException | RuntimeException e) {
            if (unixServer != null) {
                unixServer.shutdownNow();
                unixServer = null;
            }
            loops.shutdownGracefully(0, 0, TimeUnit.SECONDS);
            throw new IllegalStateException(name + ": cannot listen on " + unixSocketSetting + "=" + unixSocket + " ("
                    + e.getMessage() + ")", e);
        }
    }

    private NettyServerBuilder configure(NettyServerBuilder b) {
        b.maxInboundMessageSize(maxInboundMessageBytes)
                .keepAliveTime(keepAliveTime.toNanos(), TimeUnit.NANOSECONDS)
                .keepAliveTimeout(keepAliveTimeout.toNanos(), TimeUnit.NANOSECONDS)
                .permitKeepAliveTime(PERMIT_KEEPALIVE_TIME.toNanos(), TimeUnit.NANOSECONDS)
                .permitKeepAliveWithoutCalls(true)
                .addService(ServerInterceptors.intercept(RequestParsingGuard.guard(health.getHealthService()
                        .bindService(), null, halfCloseBound), healthWatches))
                .addService(RequestParsingGuard.guard(ProtoReflectionServiceV1.newInstance().bindService(), null,
                        halfCloseBound));
        if (maxCallsPerConnection > 0) {
            b.maxConcurrentCallsPerConnection(maxCallsPerConnection);
        }
        if (resettableCalls) {
            b.addStreamTracerFactory(heldRequests == null ? CallReset.tracerFactory()
                    : CallReset.tracerFactory(heldRequests));
        }
        for (BindableService s : services) {
            b.addService(ServerInterceptors.intercept(RequestParsingGuard.guard(s.bindService(), null, halfCloseBound),
                    interceptors));
        }
        if (!transportThreadMethods.isEmpty()) {
            // null = the server's default executor.
            b.callExecutor(new ServerCallExecutorSupplier() {
                @Override
                public <Q, R> Executor getExecutor(ServerCall<Q, R> call, Metadata headers) {
                    return transportThreadMethods.contains(call.getMethodDescriptor().getFullMethodName())
                            ? MoreExecutors.directExecutor() : null;
                }
            });
        }
        return b;
    }

    /**
     * Call before {@link #start()}: the server then reports NOT_SERVING from its start until
     * {@link #setServing(boolean) setServing(true)} (the gateway mirrors its readiness into gRPC health, and must
     * not look ready before it is).
     */
    public GrpcServerLifecycle startNotServing() {
        servingOnStart = false;
        return this;
    }

    /**
     * Sets the health of service {@code ""} and of every service of this server. No effect once {@link #stop()}
     * began: grpc's HealthStatusManager keeps its terminal NOT_SERVING, so a draining server never looks ready.
     */
    public void setServing(boolean serving) {
        ServingStatus status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
        health.setStatus("", status);
        for (String service : serviceNames) {
            health.setStatus(service, status);
        }
    }

    /**
     * Tells every client connection to go away while the calls in flight on it go on: grpc-java's graceful
     * {@link Server#shutdown()}, which sends HTTP/2 GOAWAY on each connection (RFC 9113 §6.8: streams the client opens
     * after it are refused, and grpc-java's client retries them transparently on a new connection) and closes the
     * listeners. A drain calls this when it starts, so that a client whose long-lived connection was pinned to this
     * server (a Kubernetes Service picks a pod per connection, not per call) reconnects, and lands on another pod,
     * instead of having every call refused until the drain ends. {@link #stop()} then waits for the calls left as
     * before. No effect before {@link #start()} or after {@link #stop()}.
     */
    public void sendGoAway() {
        Server s = server;
        Server u = unixServer;
        if (s != null) {
            s.shutdown();
            log.info("{} gRPC: GOAWAY sent to every client connection; calls in flight go on", name);
        }
        if (u != null) {
            u.shutdown();
        }
    }

    @Override
    public void stop() {
        Server s = server;
        if (s == null) {
            return;
        }
        health.enterTerminalState();
        Server u = unixServer;
        s.shutdown();
        if (u != null) {
            u.shutdown();
        }
        // The watchers have their NOT_SERVING; an open watch would hold the graceful shutdown for the whole grace.
        healthWatches.closeAll();
        try {
            long deadline = System.nanoTime() + shutdownGrace.toNanos();
            for (Server each : u == null ? List.of(s) : List.of(s, u)) {
                if (!each.awaitTermination(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                    each.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            s.shutdownNow();
            if (u != null) {
                u.shutdownNow();
            }
        }
        server = null;
        if (u != null) {
            unixServer = null;
            unixLoops.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            unixLoops = null;
            // Netty unlinks the file when the listening channel closes; a leftover would only be stale.
            UnixSocketFile.deleteQuietly(unixSocket);
        }
        // Spring's test context cache stops idle contexts and starts them again (pause / resume).
        health = new HealthStatusManager();
        healthWatches = new HealthWatchCloser();
    }

    @Override
    public boolean isRunning() {
        return server != null;
    }

    /**
     * Stops with the web server (Spring Boot's stop phase, after its graceful shutdown at MAX - 1024) and before the
     * beans the services use.
     */
    @Override
    public int getPhase() {
        return Integer.MAX_VALUE - 2048;
    }

    /** The bound port (the real one when configured with 0); -1 before start. */
    public int port() {
        Server s = server;
        return s == null ? -1 : s.getPort();
    }

    public HealthStatusManager health() {
        return health;
    }
}
