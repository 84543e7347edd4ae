package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import io.grpc.Context;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.BlockOffload.Outcome;
import io.moemesh.proto.kvcache.v1.PinRequest;
import io.moemesh.proto.kvcache.v1.PinResponse;
import io.moemesh.proto.kvcache.v1.UnpinRequest;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
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
 *
 * <p>The channel, the Put, Pin and Unpin paths are warmed up before each test (an mTLS handshake and cold code on a
 * loaded machine could take longer than the offload timeout, and the Pin would never be sent), and each test waits for
 * the Pin to reach the service rather than assume it did: the failure is the Pin's deadline, nothing before it.
 */
class AttendOffloadPinFailureTest {
    private static final Duration OFFLOAD_TIMEOUT = Duration.ofSeconds(1);
    /** Longer than the offload timeout: the gateway has given up by then. */
    private static final Duration LATE = Duration.ofSeconds(3);
    @TempDir
    Path ssdDir;
    private LoopbackKvCache kv;
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
    /** The pin ids of the Pins and of the Unpins the service received, in order. */
    private final List<ByteString> pinIds = new CopyOnWriteArrayList<>();
    private final List<ByteString> unpinIds = new CopyOnWriteArrayList<>();

    @BeforeEach
    void start() {
        kv = new LoopbackKvCache(ssdDir, "late", AdmissionPolicy.ADMIT_ALL, List.of(new LatePin()));
        client = kv.client;
        writeBack = kv.writeBack();
        offload = new AttendOffload(client, writeBack, 1, 0, Duration.ofSeconds(10), OFFLOAD_TIMEOUT, 64);
        warmUp();
    }

    /** One Put, Pin and Unpin of other blocks, with generous deadlines: the channel and the code paths are warm. */
    private void warmUp() {
        List<BlockContents> warm = WriteBackTest.chain(2, 99);
        List<BlockHash> hashes = warm.stream().map(BlockContents::hash).toList();
        writeBack.writeFirst(warm, hashes, true).orTimeout(30, TimeUnit.SECONDS).join();
        byte[] id = KvCacheClient.newPinId();
        assertThat(client.pin(hashes, id, Duration.ofSeconds(30)).pinned()).containsExactly(true, true);
        assertThat(client.unpin(id, Duration.ofSeconds(30))).isEqualTo(2);
        pinIds.clear();
        unpinIds.clear();
    }

    @AfterEach
    void stop() {
        offload.close();
        writeBack.close(Duration.ZERO);
        kv.close();
        timer.shutdownNow();
    }

    private boolean pinned(BlockContents b) {
        return kv.pinned(b);
    }

    @Test
    void aPinAnsweredAfterTheOffloadTimeout_leavesNothingPinned_onceTheSequenceEnds() throws Exception {
        pinAnswersLate = true;
        List<BlockContents> seq = WriteBackTest.chain(3, 2);

        assertThat(offload.offload(7, seq).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.FAILED);
        offload.released(7);

        await("the Pin reached the service").atMost(Duration.ofSeconds(20)).until(() -> pinAnswer.get() != null);
        assertThat(pinAnswer.get().getPinnedList()).as("the service pinned them all").containsExactly(true, true, true);
        await().atMost(Duration.ofSeconds(20)).until(() -> seq.stream().noneMatch(this::pinned));
        assertThat(unpinIds).as("the gateway unpinned the failed Pin's id").isNotEmpty()
                .containsOnly(pinIds.getFirst());
        assertThat(offload.offloadFailures()).isEqualTo(1);
        assertThat(offload.pinnedSequences()).isZero();
    }

    @Test
    void aPinReachingTheServiceAfterTheGatewayGaveUp_pinsNothing() throws Exception {
        pinArrivesLate = true;
        List<BlockContents> seq = WriteBackTest.chain(3, 3);

        assertThat(offload.offload(8, seq).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.FAILED);
        offload.released(8);

        // The late Pin runs in a context nobody cancels: only the gateway's Unpin of its id (a tombstone if it came
        // first, a release if the Pin did) keeps its blocks from staying pinned.
        await("the late Pin ran").atMost(Duration.ofSeconds(20)).until(() -> latePins.get() == 1);
        await().atMost(Duration.ofSeconds(20)).until(() -> seq.stream().noneMatch(this::pinned));
        assertThat(pinIds).hasSize(1);
        assertThat(unpinIds).as("the gateway unpinned the failed Pin's id").isNotEmpty()
                .containsOnly(pinIds.getFirst());
        assertThat(seq).as("the blocks were stored")
                .allMatch(b -> kv.stored(b));
    }

    /**
     * Holds back the Pin's answer ({@link #pinAnswersLate}) or the Pin itself ({@link #pinArrivesLate}); records the
     * pin ids of the Pins and Unpins.
     */
    private final class LatePin implements ServerInterceptor {
        @Override
        public <Q, A> ServerCall.Listener<Q> interceptCall(ServerCall<Q, A> call, Metadata headers,
                                                           ServerCallHandler<Q, A> next) {
            String method = call.getMethodDescriptor().getBareMethodName();
            if ("Unpin".equals(method)) {
                return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(
                        next.startCall(call, headers)) {
                    @Override
                    public void onMessage(Q message) {
                        UnpinRequest r = parse(message, UnpinRequest.parser());
                        unpinIds.add(r.getPinId());
                        super.onMessage(stream(r));
                    }
                };
            }
            if (!"Pin".equals(method)) {
                return next.startCall(call, headers);
            }
            ServerCall.Listener<Q> listener = startPin(call, headers, next);
            return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
                @Override
                public void onMessage(Q message) {
                    PinRequest r = parse(message, PinRequest.parser());
                    pinIds.add(r.getPinId());
                    super.onMessage(stream(r));
                }
            };
        }

        private <Q, A> ServerCall.Listener<Q> startPin(ServerCall<Q, A> call, Metadata headers,
                                                      ServerCallHandler<Q, A> next) {
            if (pinArrivesLate) {
                ServerCall.Listener<Q> listener = next.startCall(call, headers);
                return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
                    @Override
                    public void onHalfClose() {
                        timer.schedule(() -> {
                            try {
                                // Not the call's context, which its deadline cancelled: the service's own check of
                                // the cancellation must not be what stops the Pin, only the tombstone of its id.
                                Context.ROOT.run(super::onHalfClose);
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

    /** A request as the service's interceptors see it: unparsed (RequestParsingGuard parses it after them). */
    static <M> M parse(Object message, Parser<M> parser) {
        try {
            return parser.parseFrom((InputStream) message);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A request handed on, unparsed, to the service. */
    @SuppressWarnings("unchecked")
    static <Q> Q stream(MessageLite m) {
        return (Q) new ByteArrayInputStream(m.toByteArray());
    }
}
