package io.moemesh.service.grpc;

import com.google.common.util.concurrent.MoreExecutors;
import io.grpc.BindableService;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallExecutorSupplier;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.context.SmartLifecycle;

/**
 * Runs a plain grpc-java Netty server inside a Spring context: started after the beans it serves, stopped
 * gracefully first (health NOT_SERVING, no new calls, in-flight calls get {@code shutdownGrace}). gRPC health
 * v1 and reflection v1 are always on. Port 0 binds a free port; {@link #port()} reads it back. Every service's
 * requests are parsed by {@link RequestParsingGuard}: an unparseable message is INVALID_ARGUMENT, not UNKNOWN.
 */
public final class GrpcServerLifecycle implements SmartLifecycle {
    private static final Logger log = LoggerFactory.getLogger(GrpcServerLifecycle.class);

    private final String name;
    private final String host;
    private final int requestedPort;
    private final int maxInboundMessageBytes;
    private final Duration shutdownGrace;
    private final List<BindableService> services;
    private final List<ServerInterceptor> interceptors;
    private final Set<String> transportThreadMethods;
    private final HealthStatusManager health = new HealthStatusManager();
    private volatile Server server;

    public GrpcServerLifecycle(String name, String host, int port, int maxInboundMessageBytes, Duration shutdownGrace,
                               List<BindableService> services, List<ServerInterceptor> interceptors) {
        this(name, host, port, maxInboundMessageBytes, shutdownGrace, services, interceptors, Set.of());
    }

    /**
     * @param transportThreadMethods full method names whose call callbacks run on the Netty event loop that read
     *     the message instead of being handed to gRPC's default executor (from the call's start on: grpc-java
     *     looks the method up on the default executor). Only for handlers that never block (the
     *     ExpertBatch stream decodes and queues to its own workers): each hand-off is a thread wake-up on the
     *     per-layer hop, tens of µs on a busy host.
     */
    public GrpcServerLifecycle(String name, String host, int port, int maxInboundMessageBytes, Duration shutdownGrace,
                               List<BindableService> services, List<ServerInterceptor> interceptors,
                               Set<String> transportThreadMethods) {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException(name + ": gRPC port must be in [0, 65535], got " + port);
        }
        this.name = name;
        this.host = host;
        this.requestedPort = port;
        this.maxInboundMessageBytes = maxInboundMessageBytes;
        this.shutdownGrace = shutdownGrace;
        this.services = List.copyOf(services);
        this.interceptors = List.copyOf(interceptors);
        this.transportThreadMethods = Set.copyOf(transportThreadMethods);
    }

    @Override
    public void start() {
        NettyServerBuilder b = NettyServerBuilder.forAddress(new InetSocketAddress(host, requestedPort))
                .maxInboundMessageSize(maxInboundMessageBytes)
                .permitKeepAliveTime(10, TimeUnit.SECONDS)
                .permitKeepAliveWithoutCalls(true)
                .addService(RequestParsingGuard.guard(health.getHealthService().bindService()))
                .addService(RequestParsingGuard.guard(ProtoReflectionServiceV1.newInstance().bindService()));
        for (BindableService s : services) {
            b.addService(ServerInterceptors.intercept(RequestParsingGuard.guard(s.bindService()), interceptors));
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
        try {
            server = b.build().start();
        } catch (IOException e) {
            throw new UncheckedIOException(name + ": cannot bind gRPC on " + host + ":" + requestedPort, e);
        }
        health.setStatus("", ServingStatus.SERVING);
        for (BindableService s : services) {
            health.setStatus(s.bindService().getServiceDescriptor().getName(), ServingStatus.SERVING);
        }
        log.info("{} gRPC listening on {}:{}", name, host, server.getPort());
    }

    @Override
    public void stop() {
        Server s = server;
        if (s == null) {
            return;
        }
        health.enterTerminalState();
        s.shutdown();
        try {
            if (!s.awaitTermination(shutdownGrace.toMillis(), TimeUnit.MILLISECONDS)) {
                s.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            s.shutdownNow();
        }
        server = null;
    }

    @Override
    public boolean isRunning() {
        return server != null;
    }

    /** Stops after web servers and before the beans the services use. */
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
