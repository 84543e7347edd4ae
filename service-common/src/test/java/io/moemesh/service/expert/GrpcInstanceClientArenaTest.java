package io.moemesh.service.expert;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.grpc.ForwardingServerCall;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.common.v1.ArenaRegion;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.grpc.LocalPeer;
import io.moemesh.service.grpc.TensorArena;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.opentelemetry.api.OpenTelemetry;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The client's side of the shared-memory hop, against a fake instance on a real peer-uid domain socket that maps the
 * offered arena and echoes through it (the generated protobuf classes on its side): a slot is given back when its
 * reply arrives, not before, a reply naming another slot fails its own call, and with every slot taken calls travel
 * in the message.
 */
class GrpcInstanceClientArenaTest {
    private static final int HIDDEN = 64;
    @TempDir
    Path dir;
    private GrpcServerLifecycle server;
    private Path socket;
    /** The arena the fake instance mapped. */
    private final AtomicReference<TensorArena> mapped = new AtomicReference<>();
    /** Replies to layer-9 messages wait for this. */
    private final CountDownLatch release = new CountDownLatch(1);
    /** Replies to layer-7 messages name the slot after their request's. */
    private volatile boolean wrongSlot;

    @BeforeEach
    void start() {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable());
        socket = dir.resolve("sockets").resolve("fake.sock");
        ServerInterceptor mapsArenas = new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers,
                                                               ServerCallHandler<Q, R> next) {
                String path = headers.get(ExpertBatchWire.ARENA_HEADER);
                Integer uid = call.getAttributes().get(LocalPeer.PEER_UID);
                if (path != null && uid != null) {
                    mapped.set(TensorArena.open(path, uid));
                }
                return next.startCall(new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
                    @Override
                    public void sendHeaders(Metadata h) {
                        if (path != null && uid != null) {
                            h.put(ExpertBatchWire.ARENA_HEADER, ExpertBatchWire.ARENA_MAPPED);
                        }
                        super.sendHeaders(h);
                    }
                }, headers);
            }
        };
        server = new GrpcServerLifecycle("fake expert", "127.0.0.1", 0, InsecureServerCredentials.create(), 64 << 20,
                Duration.ofMillis(100), List.of(() -> ServerInterceptors.intercept(echo(), mapsArenas)), List.of())
                .alsoOnUnixSocket(socket, "test.grpc-unix-socket", UnixSocketSecurity.PEER_UID, "test.unix-socket-security");
        server.start();
    }

    @AfterEach
    void stop() {
        release.countDown();
        if (server != null) {
            server.stop();
        }
    }

    /** Echo: the outputs are the activations, in the request's own slot when it came in one. */
    private io.grpc.ServerServiceDefinition echo() {
        return new ExpertServiceGrpc.ExpertServiceImplBase() {
            @Override
            public StreamObserver<ExpertBatchRequest> expertBatch(StreamObserver<ExpertBatchResponse> out) {
                return new StreamObserver<>() {
                    @Override
                    public void onNext(ExpertBatchRequest r) {
                        var outputs = r.getActivations().toBuilder();
                        if (r.getActivations().hasRegion() && r.getLayer() == 7 && wrongSlot) {
                            ArenaRegion region = r.getActivations().getRegion();
                            long other = (region.getOffsetBytes() - 64 + region.getCapacityBytes())
                                    % (2 * region.getCapacityBytes()) + 64;
                            outputs.setRegion(region.toBuilder().setOffsetBytes(other));
                        }
                        ExpertBatchResponse reply = ExpertBatchResponse.newBuilder().setBatchId(r.getBatchId())
                                .setLayer(r.getLayer()).setOutputs(outputs).build();
                        if (r.getLayer() == 9) {
                            CompletableFuture.runAsync(() -> {
                                try {
                                    release.await();
                                } catch (InterruptedException e) {
                                    Thread.currentThread().interrupt();
                                }
                                synchronized (out) {
                                    out.onNext(reply);
                                }
                            });
                            return;
                        }
                        synchronized (out) {
                            out.onNext(reply);
                        }
                    }

                    @Override
                    public void onError(Throwable t) {
                    }

                    @Override
                    public void onCompleted() {
                        synchronized (out) {
                            out.onCompleted();
                        }
                    }
                };
            }
        }.bindService();
    }

    private GrpcInstanceClient client(int slots) {
        return new GrpcInstanceClient("expert-0", InstanceEndpoint.unix(socket).target(),
                InsecureChannelCredentials.create(), UnixSocketSecurity.PEER_UID, DType.DTYPE_F32, 64 << 20,
                OpenTelemetry.noop(), GrpcInstanceClient.DEFAULT_STALL_BOUND,
                new SharedMemory(slots, 4096, dir));
    }

    private static ExpertCall call(int layer, long seed) {
        Random r = new Random(seed);
        float[] x = new float[2 * HIDDEN];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        return new ExpertCall(1, layer, x, 2, HIDDEN, new int[] {1, 1}, new int[] {0, 1}, new float[] {1f, 1f});
    }

    /** Calls until one went through the arena (the first ones may leave before the instance's answer). */
    private static void untilMapped(GrpcInstanceClient c) {
        await().atMost(Duration.ofMinutes(1)).until(() -> {
            c.call(call(0, 0)).get(30, TimeUnit.SECONDS);
            return c.arenaCalls() > 0;
        });
    }

    @Test
    void echoThroughTheSlot_givesTheActivationsBack_andEverySlotIsFreeAgain() throws Exception {
        try (GrpcInstanceClient c = client(2)) {
            untilMapped(c);
            for (int i = 1; i <= 5; i++) {
                ExpertCall x = call(i, i);
                assertThat(c.call(x).get(30, TimeUnit.SECONDS)).containsExactly(x.activations());
            }
            assertThat(c.arenaCalls()).isGreaterThanOrEqualTo(6);
            assertThat(c.arenaSlotsInUse()).isZero();
            assertThat(mapped.get()).isNotNull();
        }
    }

    @Test
    void aReplyInAnotherSlot_failsThatCall_namingIt_theSlotComesBack_andTheStreamGoesOn() throws Exception {
        try (GrpcInstanceClient c = client(2)) {
            untilMapped(c);
            wrongSlot = true;
            assertThatThrownBy(() -> c.call(call(7, 1)).get(30, TimeUnit.SECONDS))
                    .isInstanceOf(ExecutionException.class).rootCause().isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("not its request's slot");
            assertThat(c.arenaSlotsInUse()).isZero();
            ExpertCall next = call(1, 2);
            assertThat(c.call(next).get(30, TimeUnit.SECONDS)).containsExactly(next.activations());
        }
    }

    @Test
    void aCallGivenUpBeforeItsReply_keepsItsSlotUntilTheReplyArrives_andWithNoFreeSlotCallsTravelInTheMessage()
            throws Exception {
        try (GrpcInstanceClient c = client(1)) {
            untilMapped(c);
            CompletableFuture<float[]> held = c.call(call(9, 1));
            held.cancel(true);
            // the instance may still write its reply into the slot: it stays taken
            assertThat(c.arenaSlotsInUse()).isOne();
            long before = c.arenaCalls();
            ExpertCall inline = call(1, 3);
            assertThat(c.call(inline).get(30, TimeUnit.SECONDS)).containsExactly(inline.activations());
            assertThat(c.arenaCalls()).isEqualTo(before);
            release.countDown();
            await().atMost(Duration.ofMinutes(1)).until(() -> c.arenaSlotsInUse() == 0);
            ExpertCall again = call(2, 4);
            assertThat(c.call(again).get(30, TimeUnit.SECONDS)).containsExactly(again.activations());
            assertThat(c.arenaCalls()).isEqualTo(before + 1);
            assertThat(Arrays.equals(again.activations(), inline.activations())).isFalse();
        }
    }
}
