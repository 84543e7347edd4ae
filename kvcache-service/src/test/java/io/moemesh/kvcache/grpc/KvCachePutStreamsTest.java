package io.moemesh.kvcache.grpc;

import static io.moemesh.kvcache.grpc.InProcessKvCache.LAYOUT;
import static io.moemesh.kvcache.grpc.InProcessKvCache.fingerprint;
import static io.moemesh.kvcache.grpc.InProcessKvCache.wire;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.grpc.InProcessKvCache.Answer;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.proto.kvcache.v1.PutBlockHeader;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import java.nio.ByteBuffer;
import io.moemesh.kvcache.tier.TestBlocks;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Put streams against the real service and store (in-process): a block's buffer grows with the bytes received, so
 * a header alone reserves nothing, and the streams open at once are bounded (moemesh.kvcache.max-put-streams), idle
 * ones giving their place up to new ones. Before, each header allocated a whole block (4 MiB for Mixtral) and nothing
 * bounded the streams: clients that opened streams and sent only headers could exhaust the heap.
 */
class KvCachePutStreamsTest {
    @TempDir
    Path dir;
    private InProcessKvCache kv;
    private final AtomicLong now = new AtomicLong();

    @BeforeEach
    void open() {
        kv = new InProcessKvCache(dir, 4, PutStreams.DEFAULT_MAX_STREAMS);
    }

    @AfterEach
    void close() {
        kv.close();
    }

    private static PutBlockHeader header(int seed) {
        int[] tokens = {seed, 1, 2, 3};
        BlockHash h = BlockHash.of(null, tokens, 0, tokens.length, io.moemesh.kvcache.tier.TestBlocks.MODEL, "");
        PutBlockHeader.Builder b = PutBlockHeader.newBuilder().setModelFingerprint(fingerprint()).setLayout(wire())
                .setBlockHash(ByteString.copyFrom(h.bytes())).setParentHash(ByteString.copyFrom(new byte[32]));
        Arrays.stream(tokens).forEach(b::addTokenIds);
        return b.build();
    }

    /** A block's payload of finite float32 values. */
    private static byte[] payload(int seed) {
        byte[] payload = new byte[LAYOUT.bytesPerBlock()]; // 512
        new Random(seed).nextBytes(payload);
        for (int i = 0; i < payload.length; i += 4) {
            payload[i + 3] = 0x3f; // finite float32 values
        }
        return payload;
    }

    private PutStream open(PutStreams streams, Answer<PutResponse> answer) {
        StreamObserver<PutRequest> s = streams.open(kv.models, kv.metrics, answer);
        assertThat(s).isInstanceOf(PutStream.class);
        return (PutStream) s;
    }

    @Test
    void headerOnlyStreams_reserveNoBlock_andOneStreamPastTheLimit_isResourceExhausted_namingTheProperty()
            throws Exception {
        PutStreams streams = new PutStreams(3, now::get);
        List<Answer<PutResponse>> answers = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Answer<PutResponse> a = new Answer<>();
            PutStream s = open(streams, a);
            s.onNext(PutRequest.newBuilder().setHeader(header(i)).build());
            assertThat(s.bufferedBytes()).as("stream %d's buffer", i).isZero();
            answers.add(a);
        }

        Answer<PutResponse> refused = new Answer<>();
        streams.open(kv.models, kv.metrics, refused);

        Status s = refused.status();
        assertThat(s.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(s.getDescription()).isEqualTo("Put: 3 Put streams are open, the most "
                + "moemesh.kvcache.max-put-streams allows; retry when one ended");
        assertThat(answers).noneMatch(Answer::isDone);
        assertThat(streams.openStreams()).isEqualTo(3);
    }

    @Test
    void streamsWithoutAMessageFor30s_giveTheirPlaceUp_toANewStream() throws Exception {
        PutStreams streams = new PutStreams(2, now::get);
        Answer<PutResponse> quiet = new Answer<>();
        open(streams, quiet).onNext(PutRequest.newBuilder().setHeader(header(1)).build());
        Answer<PutResponse> busy = new Answer<>();
        PutStream b = open(streams, busy);
        now.addAndGet(TimeUnit.SECONDS.toNanos(31));
        b.onNext(PutRequest.newBuilder().setHeader(header(2)).build());

        Answer<PutResponse> next = new Answer<>();
        open(streams, next);

        Status s = quiet.status();
        assertThat(s.getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(s.getDescription()).startsWith("Put: no message for 30 s while 2 Put streams were open "
                + "(moemesh.kvcache.max-put-streams)");
        assertThat(busy.isDone()).isFalse();
        assertThat(streams.openStreams()).isEqualTo(2);
    }

    @Test
    void aBlocksBuffer_growsWithTheBytesReceived_neverPastTheBlock_andTheBlockIsStoredWhole() throws Exception {
        PutStreams streams = new PutStreams(1, now::get);
        byte[] payload = payload(5);
        Answer<PutResponse> answer = new Answer<>();
        PutStream s = open(streams, answer);
        List<Integer> buffered = new ArrayList<>();
        s.onNext(PutRequest.newBuilder().setHeader(header(3)).setData(ByteString.copyFrom(payload, 0, 100)).build());
        buffered.add(s.bufferedBytes());
        for (int off = 100; off < 400; off += 100) {
            s.onNext(PutRequest.newBuilder().setData(ByteString.copyFrom(payload, off, 100)).build());
            buffered.add(s.bufferedBytes());
        }
        s.onNext(PutRequest.newBuilder().setData(ByteString.copyFrom(payload, 400, 112)).build());
        buffered.add(s.bufferedBytes());
        s.onCompleted();

        assertThat(buffered).containsExactly(100, 200, 400, 400, 0);
        assertThat(answer.value().getResults(0).getOutcome()).isEqualTo(PutOutcome.PUT_OUTCOME_STORED);
        BlockKey key = BlockKey.of(header(3).getBlockHash().toByteArray());
        assertThat(kv.store.get(key).orElseThrow().block()
                .sameContent(KvBlock.wrapOwned(key, LAYOUT, ByteBuffer.wrap(payload)))).isTrue();
        assertThat(streams.openStreams()).as("the answered stream left").isZero();
    }

    /**
     * A stream storing a block behind a slow demotion to SSD (the store's lock is held across the write) is busy, not
     * idle, however long ago its message came: a new stream past the limit is refused at once, not held by it, and
     * the busy stream's block is stored and answered. Before, the new stream's gRPC thread waited on the busy stream's
     * monitor until the store returned, then ended that stream: the reply for the block it had just stored was lost.
     */
    @Test
    void aStreamStoringABlockBehindASlowDemotion_isBusyNotIdle_soANewStreamIsRefusedAtOnce_andItsBlockAnswered()
            throws Exception {
        PutStreams streams = new PutStreams(1, now::get);
        for (int i = 10; i < 14; i++) {
            kv.store.put(TestBlocks.block(i)); // DRAM full: the next put demotes a block to SSD
        }
        InProcessKvCache.Hold hold = kv.holdLowerWrites();
        Answer<PutResponse> busy = new Answer<>();
        PutStream s = open(streams, busy);
        Thread storing = Thread.ofPlatform().start(() -> s.onNext(PutRequest.newBuilder().setHeader(header(4))
                .setData(ByteString.copyFrom(payload(4))).build()));
        Answer<PutResponse> refused = new Answer<>();
        try {
            assertThat(hold.entered.await(30, TimeUnit.SECONDS)).isTrue();
            now.addAndGet(TimeUnit.SECONDS.toNanos(31));

            CompletableFuture<Void> opening = CompletableFuture.runAsync(
                    () -> streams.open(kv.models, kv.metrics, refused));

            await("the new stream answered while the store is still held").atMost(Duration.ofSeconds(20))
                    .until(opening::isDone);
        } finally {
            hold.release();
        }
        storing.join();
        s.onCompleted();

        assertThat(refused.status().getCode()).isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
        assertThat(busy.value().getResults(0).getOutcome()).isEqualTo(PutOutcome.PUT_OUTCOME_STORED);
        assertThat(streams.openStreams()).as("the answered stream left").isZero();
    }
}
