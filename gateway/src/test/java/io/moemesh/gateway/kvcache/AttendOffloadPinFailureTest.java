package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.grpc.KvCacheGrpcService;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.proto.kvcache.v1.PinResponse;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Attend offload's Pin fails on the gateway while the service pins anyway (the real kvcache-service's gRPC
 * service and tiers in this JVM, mutual TLS): its answer comes after the offload timeout, or the Pin itself reaches
 * the service only after the gateway gave up. Pins nest, so the gateway cannot unpin the hashes of a Pin whose outcome
 * it does not know; it unpins the Pin's id instead. Before, nothing unpinned them: the blocks stayed unevictable
 * until the service restarted, and once they filled the tiers every Put answered NO_SPACE.
 */
class AttendOffloadPinFailureTest {
    private static final KvPayload SHAPE = WriteBackTest.LAYOUT;
    private static final Duration OFFLOAD_TIMEOUT = Duration.ofMillis(500);
    /** Longer than the offload timeout: the gateway has given up by then. */
    private static final Duration LATE = Duration.ofMillis(1500);
    @TempDir
    Path ssdDir;
    private TieredKvStore store;
    private ServedModels models;
    private GrpcServerLifecycle server;
    private KvCacheClient client;
    private WriteBack writeBack;
    private AttendOffload offload;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("test-late-pin").factory());
    private volatile boolean pinAnswersLate;
    private volatile boolean pinArrivesLate;
    /** What the service answered the Pin (before the answer was held back). */
    private final AtomicReference<PinResponse> pinAnswer = new AtomicReference<>();
    /** Pins the service ran after the gateway gave up. */
    private final AtomicInteger latePins = new AtomicInteger();

    @BeforeEach
    void start() {
        KvLayout layout = new KvLayout(SHAPE.layers(), SHAPE.kvHeads(), SHAPE.headDim(), SHAPE.blockTokens());
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(ssdDir, 1 << 20), layout, WriteBackTest.MODEL, new LruPolicy());
        store = new TieredKvStore(layout, 1 << 20, new LruPolicy(), ssd, AdmissionPolicy.ADMIT_ALL, System::nanoTime);
        models = new ServedModels(List.of(new ServedModel("late", WriteBackTest.MODEL, 4, layout, store, ssd)));
        server = new GrpcServerLifecycle("test-kvcache", "127.0.0.1", 0,
                TestCertificates.credentials("expert-2").server(), 64 << 20, Duration.ofMillis(200),
                List.of(new KvCacheGrpcService(models, new KvCacheMetrics(new SimpleMeterRegistry(), models))),
                List.of(new LatePin(), new PeerIdentityInterceptor()));
        server.start();
        String endpoint = "127.0.0.1:" + server.port();
        client = new KvCacheClient(NettyChannelBuilder.forTarget(endpoint,
                TestCertificates.credentials("gateway").channel()).build(), endpoint, WriteBackTest.MODEL, SHAPE, null);
        writeBack = new WriteBack(client, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        offload = new AttendOffload(client, writeBack, 1, 0, Duration.ofSeconds(10), OFFLOAD_TIMEOUT, 64);
    }

    @AfterEach
    void stop() {
        offload.close();
        writeBack.close(Duration.ZERO);
        client.close();
        server.stop();
        timer.shutdownNow();
        models.close();
    }

    private boolean pinned(BlockContents b) {
        return store.isPinned(BlockKey.of(b.hash().bytes()));
    }

    @Test
    void aPinAnsweredAfterTheOffloadTimeout_leavesNothingPinned_onceTheSequenceEnds() throws Exception {
        pinAnswersLate = true;
        List<BlockContents> seq = WriteBackTest.chain(3, 2);

        assertThat(offload.offload(7, seq).get(30, TimeUnit.SECONDS)).isFalse();
        offload.released(7);

        assertThat(pinAnswer.get().getPinnedList()).as("the service pinned them all").containsExactly(true, true, true);
        await().atMost(Duration.ofSeconds(20)).until(() -> seq.stream().noneMatch(this::pinned));
        assertThat(offload.offloadFailures()).isEqualTo(1);
        assertThat(offload.pinnedSequences()).isZero();
    }

    @Test
    void aPinReachingTheServiceAfterTheGatewayGaveUp_pinsNothing() throws Exception {
        pinArrivesLate = true;
        List<BlockContents> seq = WriteBackTest.chain(3, 3);

        assertThat(offload.offload(8, seq).get(30, TimeUnit.SECONDS)).isFalse();
        offload.released(8);

        // Whichever comes first on the service, the late Pin or the gateway's Unpin of its id: nothing stays pinned.
        await().atMost(Duration.ofSeconds(20)).until(() -> latePins.get() == 1 && seq.stream().noneMatch(this::pinned));
        assertThat(store.stats().dram().blocks()).as("the blocks were stored").isEqualTo(3);
    }

    /** Holds back the Pin's answer ({@link #pinAnswersLate}) or the Pin itself ({@link #pinArrivesLate}). */
    private final class LatePin implements ServerInterceptor {
        @Override
        public <Q, A> ServerCall.Listener<Q> interceptCall(ServerCall<Q, A> call, Metadata headers,
                                                           ServerCallHandler<Q, A> next) {
            if (!"Pin".equals(call.getMethodDescriptor().getBareMethodName())) {
                return next.startCall(call, headers);
            }
            if (pinArrivesLate) {
                ServerCall.Listener<Q> listener = next.startCall(call, headers);
                return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
                    @Override
                    public void onHalfClose() {
                        timer.schedule(() -> {
                            try {
                                super.onHalfClose();
                            } catch (RuntimeException gone) {
                                // the call was cancelled meanwhile: its answer goes nowhere
                            } finally {
                                latePins.incrementAndGet();
                            }
                        }, LATE.toMillis(), TimeUnit.MILLISECONDS);
                    }
                };
            }
            if (!pinAnswersLate) {
                return next.startCall(call, headers);
            }
            return next.startCall(new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
                @Override
                public void sendHeaders(Metadata h) {
                    later(() -> super.sendHeaders(h));
                }

                @Override
                public void sendMessage(A message) {
                    pinAnswer.set((PinResponse) message);
                    later(() -> super.sendMessage(message));
                }

                @Override
                public void close(Status status, Metadata trailers) {
                    later(() -> super.close(status, trailers));
                }
            }, headers);
        }

        private void later(Runnable r) {
            timer.schedule(() -> {
                try {
                    r.run();
                } catch (RuntimeException gone) {
                    // the caller's deadline ended the call meanwhile
                }
            }, LATE.toMillis(), TimeUnit.MILLISECONDS);
        }
    }
}
