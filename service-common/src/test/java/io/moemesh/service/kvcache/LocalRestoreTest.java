package io.moemesh.service.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import io.moemesh.proto.kvcache.v1.BlockExtent;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LocateRequest;
import io.moemesh.proto.kvcache.v1.LocateResponse;
import io.moemesh.proto.kvcache.v1.LocatedBlock;
import io.moemesh.proto.kvcache.v1.PayloadEncoding;
import io.moemesh.proto.kvcache.v1.Tier;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link LocalRestore#restore} against a loopback server whose {@code Locate} points at segment-like files in a temp
 * dir and whose {@code Get} breaks the chunk contract on its first block: the blocks read locally before that Get are
 * kept, and the result says the run ended at a bad block. Before, the Get's bad first block was thrown and the whole
 * restore, its good local blocks included, was lost.
 */
class LocalRestoreTest {
    private static final int BLOCK = LocalBlockReaderTest.BLOCK;
    @TempDir
    Path dir;
    private Server server;
    private ManagedChannel channel;

    /** A server answering Locate with {@code located} and every Get with a first block 4 bytes short. */
    private void serve(LocateResponse located) throws IOException {
        ServerServiceDefinition def = ServerServiceDefinition.builder(KvCacheServiceGrpc.SERVICE_NAME)
                .addMethod(KvCacheServiceGrpc.getLocateMethod(), ServerCalls.asyncUnaryCall(
                        (LocateRequest req, StreamObserver<LocateResponse> obs) -> {
                            obs.onNext(located);
                            obs.onCompleted();
                        }))
                .addMethod(KvGetWire.SERVER, ServerCalls.asyncServerStreamingCall(
                        (GetRequest req, StreamObserver<GetReply> obs) -> {
                            obs.onNext(GetReply.chunk(0, Tier.TIER_DRAM, 0, ByteBuffer.allocate(BLOCK - 4), true));
                            obs.onCompleted();
                        }))
                .build();
        server = NettyServerBuilder.forAddress(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))
                .addService(def).build().start();
        channel = NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext().build();
    }

    @AfterEach
    void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    /** Blocks 0..2 as f32 records after a 128-byte header in {@code a.kvseg}; their located blocks. */
    private List<LocatedBlock> segment() throws IOException {
        List<LocatedBlock> out = new java.util.ArrayList<>();
        try (FileChannel ch = FileChannel.open(dir.resolve("a.kvseg"), StandardOpenOption.CREATE,
                StandardOpenOption.WRITE)) {
            long at = LocalBlockReaderTest.HEADER;
            ch.write(ByteBuffer.allocate(LocalBlockReaderTest.HEADER), 0);
            for (int i = 0; i < 3; i++) {
                ByteBuffer rec = LocalBlockReaderTest.record(i, false);
                int len = rec.capacity();
                int crc = KvRecordFormat.storedCrc(rec);
                ch.write(rec, at);
                out.add(LocatedBlock.newBuilder().setExtent(BlockExtent.newBuilder().setSegment(0).setOffset(at)
                        .setLength(len).setCrc32C(crc).setEncoding(PayloadEncoding.PAYLOAD_ENCODING_F32)).build());
                at += len;
            }
        }
        return out;
    }

    private LocalRestore.Result restore() {
        return LocalRestore.restore(channel, KvGetWire.client(BLOCK), CallOptions.DEFAULT.withDeadlineAfter(1,
                        TimeUnit.MINUTES), ByteString.copyFrom(new byte[32]), LocalBlockReaderTest.LAYOUT,
                LocalBlockReaderTest.keys(5), BLOCK, new LocalBlockReader());
    }

    private LocateResponse.Builder located() throws IOException {
        return LocateResponse.newBuilder().setLayout(LocalBlockReaderTest.LAYOUT).setLeaseMillis(1000)
                .addSegmentPaths(dir.resolve("a.kvseg").toString()).addAllBlocks(segment()).setPresentBlocks(5);
    }

    private static void assertTheLocalBlocksKept(LocalRestore.Result r) {
        assertThat(r.blocks()).hasSize(3);
        for (int i = 0; i < 3; i++) {
            assertThat(r.blocks().get(i)).as("block %d", i)
                    .isEqualTo(LocalBlockReaderTest.f32(LocalBlockReaderTest.floats(i)));
        }
        assertThat(r.localBlocks()).isEqualTo(3);
        assertThat(r.bad()).isNotNull().hasMessageContaining("ended after 60 of 64 bytes");
    }

    @Test
    void aBadFirstBlockOfTheGetAfterAFailedLocalRead_keepsTheBlocksReadBefore_andSaysTheRunEndedAtABadBlock()
            throws IOException {
        // Block 3's record is in a segment that is gone: the read fails there, and Get serves blocks 3 and 4.
        LocatedBlock gone = LocatedBlock.newBuilder().setExtent(BlockExtent.newBuilder().setSegment(1)
                .setOffset(LocalBlockReaderTest.HEADER).setLength(KvRecordFormat.HEADER_BYTES + BLOCK)
                .setEncoding(PayloadEncoding.PAYLOAD_ENCODING_F32)).build();
        serve(located().addSegmentPaths(dir.resolve("gone.kvseg").toString()).addBlocks(gone).addBlocks(gone)
                .build());

        LocalRestore.Result r = restore();

        assertTheLocalBlocksKept(r);
        assertThat(r.failedReads()).isEqualTo(1);
    }

    @Test
    void aBadFirstBlockOfTheGetOfInMemoryBlocks_keepsTheBlocksReadBefore() throws IOException {
        LocatedBlock inMemory = LocatedBlock.newBuilder().setInMemory(true).build();
        serve(located().addBlocks(inMemory).addBlocks(inMemory).build());

        LocalRestore.Result r = restore();

        assertTheLocalBlocksKept(r);
        assertThat(r.failedReads()).isZero();
        assertThat(r.getBlocks()).isZero();
    }
}
