package io.moemesh.service.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.Tier;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiConsumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@link GetBlocks#call}: a real Get call over a loopback socket through both zero-copy marshaller sides, read on
 * the transport thread: blocks assembled exactly, the stream cancelled once the run ended, the call's status thrown
 * when no block came, the contract checks as {@link GetBlocks#read}'s.
 */
class GetBlocksCallTest {
    private static final int BLOCK = 300_000;
    private Server server;
    private ManagedChannel channel;

    /** A server whose Get answers by {@code script}; a channel to it. */
    private void serve(BiConsumer<GetRequest, ServerCallStreamObserver<GetReply>> script) throws Exception {
        ServerServiceDefinition def = ServerServiceDefinition.builder(KvCacheServiceGrpc.SERVICE_NAME)
                .addMethod(KvGetWire.SERVER, ServerCalls.asyncServerStreamingCall(
                        (GetRequest req, StreamObserver<GetReply> obs) ->
                                script.accept(req, (ServerCallStreamObserver<GetReply>) obs)))
                .build();
        server = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
                .addService(def).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext()
                .flowControlWindow(16 << 20).build();
    }

    @AfterEach
    void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    private List<byte[]> call(int requested) {
        return GetBlocks.call(channel, KvGetWire.client(BLOCK), CallOptions.DEFAULT.withDeadlineAfter(1,
                TimeUnit.MINUTES), GetRequest.getDefaultInstance(), requested, BLOCK);
    }

    private static GetReply chunk(int index, byte[] block, int from, int to, boolean last) {
        return GetReply.chunk(index, Tier.TIER_SSD, from, ByteBuffer.wrap(block, from, to - from).slice()
                .asReadOnlyBuffer(), last);
    }

    @Test
    void call_assemblesOneChunkAndMultiChunkBlocks_exactly() throws Exception {
        byte[] a = GetReplyMarshallerTest.bytes(BLOCK, 1);
        byte[] b = GetReplyMarshallerTest.bytes(BLOCK, 2);
        serve((req, obs) -> {
            obs.onNext(chunk(0, a, 0, BLOCK, true));
            obs.onNext(chunk(1, b, 0, 100_000, false));
            obs.onNext(chunk(1, b, 100_000, BLOCK, true));
            obs.onCompleted();
        });
        List<byte[]> got = call(2);
        assertThat(got).hasSize(2);
        assertThat(got.get(0)).isEqualTo(a);
        assertThat(got.get(1)).isEqualTo(b);
    }

    @Test
    void call_endsAtAMiss_andCancelsTheStreamTheServiceIsStillSending() throws Exception {
        byte[] a = GetReplyMarshallerTest.bytes(BLOCK, 3);
        AtomicBoolean cancelled = new AtomicBoolean();
        serve((req, obs) -> {
            obs.setOnCancelHandler(() -> cancelled.set(true));
            obs.onNext(chunk(0, a, 0, BLOCK, true));
            obs.onNext(GetReply.miss(1));
            obs.onNext(chunk(2, a, 0, 1000, false));
            // never completes by itself: the client must end the call once its run ended
        });
        assertThat(call(5)).containsExactly(a);
        await().atMost(Duration.ofSeconds(30)).untilTrue(cancelled);
    }

    @Test
    void call_failedBeforeAnyBlock_throwsTheCallsStatus() throws Exception {
        serve((req, obs) -> obs.onError(Status.FAILED_PRECONDITION.withDescription("block_tokens 8, served 16")
                .asRuntimeException()));
        assertThatThrownBy(() -> call(1)).isInstanceOf(StatusRuntimeException.class)
                .hasMessageContaining("FAILED_PRECONDITION").hasMessageContaining("block_tokens 8");
    }

    @Test
    void call_aBadFirstBlock_isABadReplyNamingIt_aBadLaterOneEndsTheRun() throws Exception {
        byte[] a = GetReplyMarshallerTest.bytes(BLOCK, 4);
        AtomicInteger calls = new AtomicInteger();
        serve((req, obs) -> {
            if (calls.getAndIncrement() == 1) {
                obs.onNext(chunk(0, a, 0, BLOCK, true));
            }
            // the block at the run's position, its second chunk missing, then the stream ends
            int at = calls.get() - 1;
            obs.onNext(chunk(at, a, 0, 1000, false));
            obs.onNext(chunk(at, a, 2000, BLOCK, true));
            obs.onCompleted();
        });
        assertThatThrownBy(() -> call(3)).isInstanceOf(GetBlocks.BadReplyException.class)
                .hasMessageContaining("block 0: a chunk at offset 2000 of 298000 bytes after 1000");
        assertThat(call(3)).containsExactly(a);
    }

    @Test
    void call_aStreamEndingMidBlock_isABadReply() throws Exception {
        byte[] a = GetReplyMarshallerTest.bytes(BLOCK, 5);
        serve((req, obs) -> {
            obs.onNext(chunk(0, a, 0, 1000, false));
            obs.onCompleted();
        });
        assertThatThrownBy(() -> call(1)).isInstanceOf(GetBlocks.BadReplyException.class)
                .hasMessageContaining("the stream ended after 1000 of 300000");
    }
}
