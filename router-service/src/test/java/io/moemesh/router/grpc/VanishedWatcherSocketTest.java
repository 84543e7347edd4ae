package io.moemesh.router.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import io.moemesh.proto.router.v1.WatchPlacementRequest;
import io.moemesh.proto.router.v1.WatchPlacementResponse;
import io.moemesh.router.coordination.EpochStore;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.coordination.WatcherRegistry;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.prediction.PathPredictors;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A gateway that vanishes without closing its connection (its node lost, a partition): the router's server pings
 * the idle connection and drops it when no answer comes, so the gateway stops being a watcher (which Replan's
 * wait_for_watchers would wait for) well within a minute rather than TCP's two hours. The gateway's traffic goes
 * through a proxy that, at the test's word, swallows every byte both ways and answers nothing.
 */
class VanishedWatcherSocketTest {
    @TempDir
    Path stateDir;
    final WatcherRegistry watchers = new WatcherRegistry();
    final ExecutorService pumps = Executors.newCachedThreadPool();
    final List<Socket> sockets = new CopyOnWriteArrayList<>();
    volatile boolean blackhole;
    PlacementCoordinator coordinator;
    GrpcServerLifecycle server;
    ServerSocket proxy;
    ManagedChannel channel;

    @AfterEach
    void stop() throws Exception {
        if (channel != null) {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
        if (proxy != null) {
            proxy.close();
        }
        for (Socket s : sockets) {
            s.close();
        }
        pumps.shutdownNow();
        if (server != null) {
            server.stop();
        }
        if (coordinator != null) {
            coordinator.close();
        }
    }

    /** Forwards every connection to {@code port}, byte for byte, until {@link #blackhole}: then drops them all. */
    int proxyTo(int port) throws IOException {
        proxy = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        pumps.execute(() -> {
            while (!proxy.isClosed()) {
                try {
                    Socket in = proxy.accept();
                    Socket out = new Socket(InetAddress.getLoopbackAddress(), port);
                    sockets.add(in);
                    sockets.add(out);
                    pumps.execute(() -> pump(in, out));
                    pumps.execute(() -> pump(out, in));
                } catch (IOException e) {
                    return;
                }
            }
        });
        return proxy.getLocalPort();
    }

    private void pump(Socket from, Socket to) {
        byte[] buf = new byte[8192];
        try (InputStream in = from.getInputStream()) {
            OutputStream out = to.getOutputStream();
            for (int n; (n = in.read(buf)) >= 0; ) {
                if (!blackhole) {
                    out.write(buf, 0, n);
                    out.flush();
                }
            }
        } catch (IOException e) {
            // closed by the test
        }
    }

    @Test
    void aWatcherWhoseConnectionGoesSilent_isDroppedByTheServersKeepalive() throws Exception {
        var book = new RouteBook(RouterStreamsSocketTest.SHAPE, PathPredictors.named(PathPredictors.DEFAULT,
                RouterStreamsSocketTest.SHAPE), 1000);
        var settings = new PlacementCoordinator.Settings(RouterStreamsSocketTest.INSTANCES, RouterStreamsSocketTest.SHAPE,
                false, 1, PlacementBudget.slots(3, 64), "affinity", 1_000_000, Duration.ofSeconds(30));
        coordinator = new PlacementCoordinator(settings, book, new RouterStreamsSocketTest.LoadingInstances(),
                new EpochStore(stateDir), Executors.newSingleThreadExecutor(), Executors.newFixedThreadPool(3),
                System::nanoTime);
        coordinator.start().join();
        var service = new RouterGrpcService(book, coordinator, watchers, Executors.newVirtualThreadPerTaskExecutor(),
                () -> { }, OperatorPolicy.unauthenticated());
        // Short keepalive settings (the services run with 30 s and 10 s; grpc-java raises the 1 s time asked for to its
        // 10 s least); the 5 s ping timeout leaves the proxy's threads, on a loaded machine, ample time to carry each
        // answer while the watch must stay open.
        server = new GrpcServerLifecycle("router-service", "127.0.0.1", 0, InsecureServerCredentials.create(),
                4 << 20, Duration.ofSeconds(1), List.of(service), List.of())
                .keepAlive(Duration.ofSeconds(1), Duration.ofSeconds(5));
        server.start();
        channel = Grpc.newChannelBuilderForAddress("127.0.0.1", proxyTo(server.port()),
                InsecureChannelCredentials.create()).build();
        List<Long> epochs = new CopyOnWriteArrayList<>();
        RouterServiceGrpc.newStub(channel).watchPlacement(WatchPlacementRequest.newBuilder().setWatcherId("gw-lost")
                .build(), new StreamObserver<>() {
                    @Override
                    public void onNext(WatchPlacementResponse r) {
                        epochs.add(r.getPlacement().getEpoch());
                    }

                    @Override
                    public void onError(Throwable t) {
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
        await().atMost(Duration.ofSeconds(10)).until(() -> epochs.contains(1L));
        // Idle pings are answered while the connection works: the watch stays (past the first ping, at 10 s).
        await().during(Duration.ofSeconds(12)).atMost(Duration.ofSeconds(20))
                .until(() -> watchers.watchers().containsKey("gw-lost"));

        blackhole = true;

        await().atMost(Duration.ofSeconds(30)).until(() -> watchers.watchers().isEmpty());
        assertThat(coordinator.watchCount()).isZero();
    }
}
