package io.moemesh.kvcache.grpc;

import static io.moemesh.kvcache.support.KvTestMesh.hashes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.google.protobuf.ByteString;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.kvcache.KvCacheServiceApplication;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.proto.kvcache.v1.BlockExtent;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LocateRequest;
import io.moemesh.proto.kvcache.v1.LocateResponse;
import io.moemesh.proto.kvcache.v1.LocatedBlock;
import io.moemesh.proto.kvcache.v1.PayloadEncoding;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.StatsRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.InstanceEndpoint;
import io.moemesh.service.kvcache.KvGetWire;
import io.moemesh.service.kvcache.LocalBlockReader;
import io.moemesh.service.kvcache.LocalRestore;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * {@code Locate} and the same-host restore ({@link LocalRestore}) against the whole service (Spring context) on a real
 * peer-uid epoll domain socket, its SSD tier in a temp dir (segments of 3 records, so a prefix spans several files),
 * DRAM of 2 blocks: of a sequence of 8 put in order, blocks 0..5 are on the SSD and 6, 7 in DRAM. Each test uses its
 * own sequence (seed).
 */
class KvCacheLocateTest {
    static final int BT = 16;
    static final KvLayout LAYOUT = KvTestMesh.layout(BT);
    static final int BLOCK = LAYOUT.bytesPerBlock();
    @TempDir
    static Path dir;
    static ConfigurableApplicationContext ctx;
    static ManagedChannel unix;
    static ManagedChannel tcp;

    @BeforeAll
    static void start() {
        assumeTrue(InstanceEndpoint.domainSocketsAvailable());
        ctx = run(dir, false);
        unix = unixChannel(dir);
        tcp = KvTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
    }

    @AfterAll
    static void stop() throws InterruptedException {
        for (ManagedChannel c : new ManagedChannel[] {unix, tcp}) {
            if (c != null) {
                c.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
        if (ctx != null) {
            ctx.close();
        }
    }

    static ConfigurableApplicationContext run(Path dir, boolean int8) {
        List<String> args = new ArrayList<>(KvTestMesh.args(dir.resolve("ssd"), BT, 2L * BLOCK, 64L * (BLOCK + 44)));
        args.add("--moemesh.kvcache.grpc-unix-socket=" + dir.resolve("kvcache.sock"));
        args.removeIf(a -> a.startsWith("--moemesh.kvcache.segment-bytes="));
        args.add("--moemesh.kvcache.segment-bytes=" + (128 + 3L * (BLOCK + 44)));
        args.add("--moemesh.kvcache.int8=" + int8);
        return new SpringApplicationBuilder(KvCacheServiceApplication.class).run(args.toArray(String[]::new));
    }

    /** The gateway's channel on this host: the domain socket, plaintext, the kernel-checked same uid. */
    static ManagedChannel unixChannel(Path dir) {
        return InstanceEndpoint.unix(dir.resolve("kvcache.sock"))
                .channelBuilder(KvTestMesh.certs().channelCredentials("gateway")).build();
    }

    static List<Block> putSequence(ManagedChannel ch, long seed) throws Exception {
        List<Block> seq = KvTestMesh.sequence(seed, 8, BT, "t");
        assertThat(KvTestMesh.put(ch, KvTestMesh.putMessages(seq, BT, "t")).get(1, TimeUnit.MINUTES)
                .getResultsList()).extracting(r -> r.getOutcome()).containsOnly(PutOutcome.PUT_OUTCOME_STORED);
        return seq;
    }

    static LocalRestore.Result restore(ManagedChannel ch, List<Block> seq) {
        List<byte[]> keys = seq.stream().map(b -> b.hashBytes().toByteArray()).toList();
        return LocalRestore.restore(ch, KvGetWire.client(BLOCK), CallOptions.DEFAULT.withDeadlineAfter(1,
                        TimeUnit.MINUTES), fp(), KvTestMesh.wire(BT), keys, BLOCK, new LocalBlockReader());
    }

    static ByteString fp() {
        return ByteString.copyFrom(KvTestMesh.FINGERPRINT.bytes());
    }

    static LocateRequest.Builder request(List<Block> seq) {
        return LocateRequest.newBuilder().setModelFingerprint(fp()).setLayout(KvTestMesh.wire(BT))
                .addAllBlockHashes(hashes(seq)).setLeaseMillis(10_000);
    }

    static LocateResponse locate(ManagedChannel ch, LocateRequest req) {
        return KvCacheServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES).locate(req);
    }

    @Test
    void locate_answersExtentsForSsdBlocks_andInMemoryForDramBlocks_andStopsAtTheFirstMiss() throws Exception {
        List<Block> seq = putSequence(unix, 51);
        List<Block> withUnknownTail = new ArrayList<>(seq);
        withUnknownTail.add(KvTestMesh.sequence(52, 1, BT, "t").getFirst());
        LocateResponse r = locate(unix, request(withUnknownTail).build());
        assertThat(r.getPresentBlocks()).isEqualTo(8);
        List<LocatedBlock.WhereCase> expected = new ArrayList<>(Collections.nCopies(6, LocatedBlock.WhereCase.EXTENT));
        expected.addAll(Collections.nCopies(2, LocatedBlock.WhereCase.IN_MEMORY));
        assertThat(r.getBlocksList()).extracting(LocatedBlock::getWhereCase).containsExactlyElementsOf(expected);
        assertThat(r.getSegmentPathsCount()).as("3 records a segment").isGreaterThanOrEqualTo(2);
        assertThat(r.getSegmentPathsList()).allSatisfy(p -> assertThat(Path.of(p)).isAbsolute().exists());
        assertThat(r.getLeaseMillis()).isEqualTo(10_000);
        assertThat(r.getLayout()).isEqualTo(KvTestMesh.wire(BT));
    }

    @Test
    void restoreThroughLocate_givesGetsBytes_readingTheSsdBlocksFromTheFiles() throws Exception {
        List<Block> seq = putSequence(unix, 61);
        LocalRestore.Result r = restore(unix, seq);
        assertThat(r.localBlocks()).as("blocks 0..5 read from the segment files").isEqualTo(6);
        assertThat(r.getBlocks()).as("blocks 6, 7 from DRAM through Get").isEqualTo(2);
        assertThat(r.failedReads()).isZero();
        List<byte[]> viaGet = KvTestMesh.get(tcp, BT, hashes(seq));
        assertThat(r.blocks()).hasSize(8);
        for (int i = 0; i < 8; i++) {
            assertThat(r.blocks().get(i)).as("block %d", i).isEqualTo(viaGet.get(i)).isEqualTo(seq.get(i).payload());
        }
    }

    @Test
    void aByteFlippedInASegment_isDetected_fallsBackToGet_andTheServiceDropsTheBlock() throws Exception {
        List<Block> seq = putSequence(unix, 71);
        LocateResponse before = locate(unix, request(seq).build());
        BlockExtent e = before.getBlocks(2).getExtent();
        Path segment = Path.of(before.getSegmentPaths(e.getSegment()));
        try (FileChannel ch = FileChannel.open(segment, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long at = e.getOffset() + 44 + 1000;
            ByteBuffer one = ByteBuffer.allocate(1);
            ch.read(one, at);
            ch.write(ByteBuffer.wrap(new byte[] {(byte) (one.get(0) ^ 0x10)}), at);
        }
        long failuresBefore = checksumFailures();

        LocalRestore.Result r = restore(unix, seq);
        assertThat(r.failedReads()).as("the client's check caught it").isEqualTo(1);
        assertThat(r.localBlocks()).isEqualTo(2);
        assertThat(r.blocks()).as("Get from block 2 on: the service's check drops it, a miss ends the run")
                .hasSize(2);
        assertThat(r.blocks().get(1)).isEqualTo(seq.get(1).payload());
        assertThat(checksumFailures()).isEqualTo(failuresBefore + 1);
        // not served again, by either path
        assertThat(locate(unix, request(seq).build()).getPresentBlocks()).isEqualTo(2);
        assertThat(KvTestMesh.get(tcp, BT, hashes(seq)).get(2)).isNull();
    }

    private static long checksumFailures() {
        return KvCacheServiceGrpc.newBlockingStub(tcp).stats(StatsRequest.getDefaultInstance()).getModels(0)
                .getTiers(1).getChecksumFailures();
    }

    @Test
    void locate_overTcp_isFailedPrecondition_sayingLocalReadsNeedThePeerUidSocket() throws Exception {
        List<Block> seq = putSequence(tcp, 81);
        assertThatThrownBy(() -> locate(tcp, request(seq).build())).isInstanceOfSatisfying(
                StatusRuntimeException.class, e -> {
                    assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
                    assertThat(e.getStatus().getDescription())
                            .startsWith("Locate: local reads need the peer-uid domain socket");
                    assertThat(LocalRestore.isRefusal(e)).isTrue();
                });
    }

    static Stream<Arguments> badRequests() {
        List<Block> seq = KvTestMesh.sequence(91, 2, BT, "t");
        List<ByteString> tooMany = Collections.nCopies(65_537, seq.getFirst().hashBytes());
        return Stream.of(
                Arguments.of("no hashes", (UnaryOperator<LocateRequest.Builder>) b -> b.clearBlockHashes(),
                        "block_hashes"),
                Arguments.of("65,537 hashes", (UnaryOperator<LocateRequest.Builder>) b -> b.clearBlockHashes()
                        .addAllBlockHashes(tooMany), "block_hashes"),
                Arguments.of("a 31-byte hash", (UnaryOperator<LocateRequest.Builder>) b -> b.setBlockHashes(1,
                        ByteString.copyFrom(new byte[31])), "block_hashes[1]"),
                Arguments.of("lease 0", (UnaryOperator<LocateRequest.Builder>) b -> b.setLeaseMillis(0),
                        "lease_millis"),
                Arguments.of("lease 60,001 ms", (UnaryOperator<LocateRequest.Builder>) b -> b.setLeaseMillis(60_001),
                        "lease_millis"),
                Arguments.of("blocks past chain position 2^31 - 1", (UnaryOperator<LocateRequest.Builder>) b ->
                        b.setFirstBlock(Integer.MAX_VALUE - 1), "first_block"),
                Arguments.of("a 5-byte fingerprint", (UnaryOperator<LocateRequest.Builder>) b ->
                        b.setModelFingerprint(ByteString.copyFrom(new byte[5])), "model_fingerprint"),
                Arguments.of("no fingerprint", (UnaryOperator<LocateRequest.Builder>) b -> b.clearModelFingerprint(),
                        "model_fingerprint"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badRequests")
    void locate_badRequest_isInvalidArgument_namingTheField(String what, UnaryOperator<LocateRequest.Builder> edit,
                                                            String field) {
        LocateRequest req = edit.apply(request(KvTestMesh.sequence(91, 2, BT, "t"))).build();
        assertThatThrownBy(() -> locate(unix, req)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).startsWith(field);
        });
    }

    @Test
    void locate_ofAModelThisServiceDoesNotServe_isFailedPrecondition_namingTheFingerprint() {
        LocateRequest req = request(KvTestMesh.sequence(92, 1, BT, "t")).setModelFingerprint(
                ByteString.copyFrom(new byte[32])).build();
        assertThatThrownBy(() -> locate(unix, req)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
            assertThat(e.getStatus().getDescription()).startsWith("model_fingerprint");
        });
    }

    @Test
    void int8Segments_locatedAndReadLocally_decodeToTheBytesGetSends(@TempDir Path other) throws Exception {
        try (ConfigurableApplicationContext int8 = run(other, true)) {
            ManagedChannel ch = unixChannel(other);
            try {
                List<Block> seq = putSequence(ch, 101);
                LocateResponse located = locate(ch, request(seq).build());
                assertThat(located.getBlocks(0).getExtent().getEncoding())
                        .isEqualTo(PayloadEncoding.PAYLOAD_ENCODING_INT8);
                LocalRestore.Result r = restore(ch, seq);
                assertThat(r.localBlocks()).isEqualTo(6);
                List<byte[]> viaGet = KvTestMesh.get(ch, BT, hashes(seq));
                for (int i = 0; i < 8; i++) {
                    assertThat(r.blocks().get(i)).as("block %d", i).isEqualTo(viaGet.get(i));
                }
                assertThat(r.blocks().get(0)).as("int8 is lossy").isNotEqualTo(seq.get(0).payload());
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }
}
