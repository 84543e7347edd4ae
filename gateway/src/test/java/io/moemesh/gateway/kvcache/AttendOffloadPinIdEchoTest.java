package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockOffload.Outcome;
import io.moemesh.proto.kvcache.v1.PinRequest;
import io.moemesh.proto.kvcache.v1.PinResponse;
import io.moemesh.proto.kvcache.v1.UnpinRequest;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A rolling upgrade: the Attend offload against the real kvcache-service (in this JVM, mutual TLS), as it is and as
 * a service that predates pin ids, which ignores {@code pin_id} in Pin and Unpin (a stand-in: the ids are removed from
 * the requests before the service sees them, as an older parser would skip the unknown field) and so does not echo it.
 * The gateway releases a Pin whose answer echoed its id by the id, and one whose answer did not by its hashes, exactly
 * those the answer said pinned. Before, it unpinned by id whatever the service, and an older service released
 * nothing: the blocks stayed pinned until it restarted.
 */
class AttendOffloadPinIdEchoTest {
    @TempDir
    Path ssdDir;
    private LoopbackKvCache kv;
    private KvCacheClient client;
    private WriteBack writeBack;
    private AttendOffload offload;
    /** The service ignores pin ids, as one that predates them. */
    private volatile boolean old;
    private final List<PinResponse> pinAnswers = new CopyOnWriteArrayList<>();
    private final List<UnpinRequest> unpins = new CopyOnWriteArrayList<>();
    /** Unpins the service answered. */
    private final AtomicInteger unpinsDone = new AtomicInteger();

    @BeforeEach
    void start() {
        kv = new LoopbackKvCache(ssdDir, "echo", AdmissionPolicy.ADMIT_ALL, List.of(new Versions()));
        client = kv.client;
        writeBack = kv.writeBack();
        offload = new AttendOffload(client, writeBack, 1, 0, Duration.ofSeconds(10), Duration.ofSeconds(30), 64);
    }

    @AfterEach
    void stop() {
        offload.close();
        writeBack.close(Duration.ZERO);
        kv.close();
    }

    private boolean pinned(BlockContents b) {
        return kv.pinned(b);
    }

    private static List<ByteString> hashes(List<BlockContents> blocks) {
        return blocks.stream().map(b -> ByteString.copyFrom(b.hash().bytes())).toList();
    }

    @Test
    void aPinWhoseAnswerEchoesItsId_isReleasedByTheId() throws Exception {
        List<BlockContents> seq = WriteBackTest.chain(3, 4);

        assertThat(offload.offload(1, seq).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);
        assertThat(seq).allMatch(this::pinned);
        offload.released(1);

        await().atMost(Duration.ofSeconds(20)).until(() -> seq.stream().noneMatch(this::pinned));
        assertThat(pinAnswers).hasSize(1);
        assertThat(pinAnswers.getFirst().getPinId().size()).as("the id echoed").isEqualTo(16);
        assertThat(unpins).hasSize(1);
        assertThat(unpins.getFirst().getPinId()).isEqualTo(pinAnswers.getFirst().getPinId());
        assertThat(unpins.getFirst().getBlockHashesList()).isEmpty();
    }

    @Test
    void againstAServiceThatIgnoresPinIds_aSequencesPinsAreReleasedByTheirHashes_whenItEnds() throws Exception {
        old = true;
        List<BlockContents> seq = WriteBackTest.chain(3, 5);

        assertThat(offload.offload(2, seq).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);
        assertThat(seq).allMatch(this::pinned);
        offload.released(2);

        await().atMost(Duration.ofSeconds(20)).until(() -> seq.stream().noneMatch(this::pinned));
        assertThat(pinAnswers.getFirst().getPinId()).as("nothing echoed").isEmpty();
        assertThat(unpins).hasSize(1);
        assertThat(unpins.getFirst().getBlockHashesList()).isEqualTo(hashes(seq));
    }

    /**
     * Two sequences offload the same blocks (a shared prefix): each Pin took one nested pin of each, so releasing one
     * sequence by hashes leaves the other's pins.
     */
    @Test
    void againstAServiceThatIgnoresPinIds_releasingOneSequence_keepsTheOtherSequencesPinsOfSharedBlocks()
            throws Exception {
        old = true;
        List<BlockContents> seq = WriteBackTest.chain(2, 6);
        assertThat(offload.offload(3, seq).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);
        assertThat(offload.offload(4, seq).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);

        offload.released(3);
        await().atMost(Duration.ofSeconds(20)).until(() -> unpinsDone.get() == 1);

        assertThat(seq).as("sequence 4's pins").allMatch(this::pinned);
        offload.released(4);
        await().atMost(Duration.ofSeconds(20)).until(() -> seq.stream().noneMatch(this::pinned));
    }

    /** Records the Pins' answers and the Unpins; while {@link #old}, removes the pin ids from Pin and Unpin. */
    private final class Versions implements ServerInterceptor {
        @Override
        public <Q, A> ServerCall.Listener<Q> interceptCall(ServerCall<Q, A> call, Metadata headers,
                                                           ServerCallHandler<Q, A> next) {
            String method = call.getMethodDescriptor().getBareMethodName();
            if ("Pin".equals(method)) {
                ServerCall<Q, A> recorded = new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
                    @Override
                    public void sendMessage(A message) {
                        pinAnswers.add((PinResponse) message);
                        super.sendMessage(message);
                    }
                };
                return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(
                        next.startCall(recorded, headers)) {
                    @Override
                    public void onMessage(Q message) {
                        PinRequest r = AttendOffloadPinFailureTest.parse(message, PinRequest.parser());
                        super.onMessage(AttendOffloadPinFailureTest.stream(old ? r.toBuilder().clearPinId().build()
                                : r));
                    }
                };
            }
            if ("Unpin".equals(method)) {
                return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(
                        next.startCall(call, headers)) {
                    @Override
                    public void onMessage(Q message) {
                        UnpinRequest r = AttendOffloadPinFailureTest.parse(message, UnpinRequest.parser());
                        unpins.add(r);
                        super.onMessage(AttendOffloadPinFailureTest.stream(old ? r.toBuilder().clearPinId().build()
                                : r));
                    }

                    @Override
                    public void onComplete() {
                        unpinsDone.incrementAndGet();
                        super.onComplete();
                    }
                };
            }
            return next.startCall(call, headers);
        }
    }
}
