package io.moemesh.kvcache.grpc;

import static io.moemesh.kvcache.support.KvTestMesh.hashes;
import static io.moemesh.kvcache.support.KvTestMesh.putMessages;
import static io.moemesh.kvcache.support.KvTestMesh.sequence;
import static io.moemesh.kvcache.support.KvTestMesh.wire;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.ClientCallStreamObserver;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import io.moemesh.proto.kvcache.v1.ModelStats;
import io.moemesh.proto.kvcache.v1.PinRequest;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.proto.kvcache.v1.StatsRequest;
import io.moemesh.proto.kvcache.v1.Tier;
import io.moemesh.proto.kvcache.v1.UnpinRequest;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
/** Every RPC but Attend: good and bad cases, tenant isolation, pins, half-sent puts, Stats and the metrics. */
class KvCacheServiceTest extends KvCacheServiceTestBase {
    @Test
    void health_isServing_fromTheStart_sinceTheTiersOpenBeforeTheServer() {
        assertThat(HealthGrpc.newBlockingStub(channel).check(HealthCheckRequest.getDefaultInstance()).getStatus())
                .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
    }

    @Test
    void put_thenLookupAndGet_returnTheSameBytes_fromDram() throws Exception {
        List<Block> seq = sequence(1, 3, BT, "");
        PutResponse r = put(seq, "");
        assertThat(r.getResultsList()).extracting(x -> x.getOutcome()).containsOnly(PutOutcome.PUT_OUTCOME_STORED);
        assertThat(r.getResultsList()).extracting(x -> x.getTier()).containsOnly(Tier.TIER_DRAM);
        assertThat(r.getResults(2).getBlockHash()).isEqualTo(seq.get(2).hashBytes());

        LookupResponse l = lookup(hashes(seq));
        assertThat(l.getPresentBlocks()).isEqualTo(3);
        assertThat(l.getTiersList()).containsOnly(Tier.TIER_DRAM);
        List<byte[]> got = KvTestMesh.get(channel, BT, hashes(seq));
        for (int i = 0; i < 3; i++) {
            assertThat(got.get(i)).isEqualTo(seq.get(i).payload());
        }
        assertThat(put(seq.subList(0, 1), "").getResults(0).getOutcome())
                .isEqualTo(PutOutcome.PUT_OUTCOME_ALREADY_PRESENT);
    }

    @Test
    void lookup_reportsTheLongestStoredPrefix_only() throws Exception {
        List<Block> seq = sequence(2, 3, BT, "");
        put(List.of(seq.get(0), seq.get(2)), "");
        LookupResponse l = lookup(hashes(seq));
        assertThat(l.getPresentBlocks()).isEqualTo(1);
        assertThat(l.getTiersCount()).isEqualTo(1);
        assertThat(lookup(List.of()).getPresentBlocks()).isZero();
    }

    @Test
    void aRequestOfMoreThan65536Hashes_isRefused_namingTheField() {
        List<ByteString> many = new ArrayList<>();
        ByteString h = ByteString.copyFrom(new byte[32]);
        for (int i = 0; i <= KvMessages.MAX_CHAIN_BLOCKS; i++) {
            many.add(h);
        }
        assertThatThrownBy(() -> lookup(many)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(e.getStatus().getDescription()).isEqualTo("block_hashes: 65537 hashes, need 0..65536");
        });
    }

    @Test
    void anotherTenantsKey_isAMiss_answeredExactlyAsANeverStoredKey() throws Exception {
        int[] tokens = new int[2 * BT];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = 7 + i;
        }
        List<Block> alice = KvTestMesh.sequence(tokens, new Random(3), 2, BT, "alice");
        List<Block> bob = KvTestMesh.sequence(tokens, new Random(3), 2, BT, "bob");
        List<Block> never = sequence(33, 2, BT, "alice");
        put(alice, "alice");

        assertThat(lookup(hashes(alice)).getPresentBlocks()).isEqualTo(2);
        assertThat(lookup(hashes(bob))).isEqualTo(lookup(hashes(never)));
        assertThat(lookup(hashes(bob)).getPresentBlocks()).isZero();
        GetRequest.Builder get = GetRequest.newBuilder().setModelFingerprint(fp()).setLayout(wire(BT));
        List<?> bobs = new ArrayList<>();
        stub.get(get.clone().addAllBlockHashes(hashes(bob)).build()).forEachRemaining(r -> ((List<Object>) bobs).add(r));
        List<?> nevers = new ArrayList<>();
        stub.get(get.clone().addAllBlockHashes(hashes(never)).build()).forEachRemaining(r -> ((List<Object>) nevers).add(r));
        assertThat(bobs).isEqualTo(nevers).hasSize(2);
        StatusRuntimeException a = attendError(bob);
        StatusRuntimeException b = attendError(never);
        assertThat(a.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
        assertThat(a.getStatus().getDescription()).isEqualTo(b.getStatus().getDescription());
    }

    StatusRuntimeException attendError(List<Block> blocks) {
        return org.assertj.core.api.Assertions.catchThrowableOfType(StatusRuntimeException.class,
                () -> stub.attend(attend(blocks, 0, new float[LAYOUT.headDim() * heads()], List.of(40L))));
    }

    /** The same miscalls on every RPC: the fields named, the right codes. */
    static Stream<Arguments> badRequests() {
        ByteString unknown = ByteString.copyFrom(new byte[32]);
        BlockLayout otherBlockSize = wire(BT).toBuilder().setBlockTokens(32).build();
        BlockLayout otherLayers = wire(BT).toBuilder().setNumLayers(5).build();
        ByteString shortHash = ByteString.copyFrom(new byte[31]);
        return Stream.of(
                Arguments.of("unknown fingerprint", unknown, wire(BT), List.of(), Status.Code.FAILED_PRECONDITION,
                        "model_fingerprint: 0000"),
                Arguments.of("no fingerprint", ByteString.EMPTY, wire(BT), List.of(), Status.Code.INVALID_ARGUMENT,
                        "model_fingerprint is required"),
                Arguments.of("fingerprint of 5 bytes", ByteString.copyFrom(new byte[5]), wire(BT), List.of(),
                        Status.Code.INVALID_ARGUMENT, "model_fingerprint: a model fingerprint has 32 bytes, got 5"),
                Arguments.of("another block size", fp(), otherBlockSize, List.of(), Status.Code.FAILED_PRECONDITION,
                        "layout.block_tokens: the request's blocks have 32 tokens"),
                Arguments.of("no block size", fp(), BlockLayout.getDefaultInstance(), List.of(),
                        Status.Code.INVALID_ARGUMENT, "layout.block_tokens is required"),
                Arguments.of("another layer count", fp(), otherLayers, List.of(), Status.Code.INVALID_ARGUMENT,
                        "layout.num_layers: 5, but model mixtral-tiny has 4 layers"),
                Arguments.of("a 31-byte hash", fp(), wire(BT), List.of(shortHash), Status.Code.INVALID_ARGUMENT,
                        "block_hashes[0]: a block hash has 32 bytes, got 31"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badRequests")
    void everyRpc_refusesABadModelLayoutOrHash_namingTheField(String name, ByteString fingerprint, BlockLayout layout,
                                                            List<ByteString> hashes, Status.Code code, String message) {
        List<Function<KvCacheServiceGrpc.KvCacheServiceBlockingStub, Object>> calls = List.of(
                s -> s.lookup(LookupRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout)
                        .addAllBlockHashes(hashes).build()),
                s -> s.pin(PinRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout)
                        .addAllBlockHashes(hashes).build()),
                s -> s.unpin(UnpinRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout)
                        .addAllBlockHashes(hashes).build()),
                s -> s.get(GetRequest.newBuilder().setModelFingerprint(fingerprint).setLayout(layout)
                        .addAllBlockHashes(hashes).build()).hasNext(),
                s -> s.attend(attend(sequence(9, 1, BT, ""), 0, new float[LAYOUT.headDim() * heads()], List.of(20L))
                        .toBuilder().setModelFingerprint(fingerprint).setLayout(layout).clearBlockHashes()
                        .addAllBlockHashes(hashes.isEmpty() ? hashes(sequence(9, 1, BT, "")) : hashes).build()));
        for (var call : calls) {
            assertThatThrownBy(() -> call.apply(stub)).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                assertThat(e.getStatus().getCode()).isEqualTo(code);
                assertThat(e.getStatus().getDescription()).contains(message);
            });
        }
        // Put names the block and its header.
        Block b = sequence(10, 1, BT, "").getFirst();
        PutRequest bad = PutRequest.newBuilder().setHeader(KvTestMesh.header(b, BT, "").toBuilder()
                .setModelFingerprint(fingerprint).setLayout(layout)
                .setBlockHash(hashes.isEmpty() ? b.hashBytes() : hashes.getFirst())).build();
        assertThatThrownBy(() -> KvTestMesh.put(channel, List.of(bad)).get(1, TimeUnit.MINUTES))
                .satisfies(t -> {
                    assertThat(statusOf(t).getStatus().getCode()).isEqualTo(code);
                    assertThat(statusOf(t).getStatus().getDescription()).startsWith("blocks[0].header.")
                            .contains(message.replace("block_hashes[0]", "block_hash"));
                });
    }

    @Test
    void put_refusesAnOversizeBlock_andStoresNothingOfIt() throws Exception {
        Block b = sequence(11, 1, BT, "").getFirst();
        List<PutRequest> msgs = new ArrayList<>(putMessages(List.of(b), BT, ""));
        msgs.add(PutRequest.newBuilder().setData(ByteString.copyFrom(new byte[4])).build());
        assertThatThrownBy(() -> KvTestMesh.put(channel, msgs).get(1, TimeUnit.MINUTES)).satisfies(t -> {
            assertThat(statusOf(t).getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(statusOf(t).getStatus().getDescription()).startsWith("blocks[1].data: bytes without a header");
        });
        Block c = sequence(12, 1, BT, "").getFirst();
        byte[] big = new byte[LAYOUT.bytesPerBlock() + 1];
        PutRequest oversize = PutRequest.newBuilder().setHeader(KvTestMesh.header(c, BT, ""))
                .setData(ByteString.copyFrom(big)).build();
        assertThatThrownBy(() -> KvTestMesh.put(channel, List.of(oversize)).get(1, TimeUnit.MINUTES)).satisfies(t -> {
            assertThat(statusOf(t).getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
            assertThat(statusOf(t).getStatus().getDescription()).startsWith("blocks[0].data: " + big.length
                    + " bytes sent, but a block of").contains("(oversize put)");
        });
        assertThat(lookup(List.of(c.hashBytes())).getPresentBlocks()).isZero();
    }

    @Test
    void put_refusesAHashThatDoesNotDescribeItsTokens() {
        Block b = sequence(13, 1, BT, "").getFirst();
        PutRequest wrongTenant = PutRequest.newBuilder().setHeader(KvTestMesh.header(b, BT, "mallory"))
                .setData(ByteString.copyFrom(b.payload())).build();
        assertThatThrownBy(() -> KvTestMesh.put(channel, List.of(wrongTenant)).get(1, TimeUnit.MINUTES)).satisfies(t ->
                assertThat(statusOf(t).getStatus().getDescription()).startsWith("blocks[0].header.block_hash: does "
                        + "not match parent_hash, token_ids"));
        assertThat(lookup(List.of(b.hashBytes())).getPresentBlocks()).isZero();
    }

    @Test
    void put_streamEndingMidBlock_isRefused_andTheIncompleteBlockIsNotVisible() {
        Block b = sequence(14, 1, BT, "").getFirst();
        PutRequest half = PutRequest.newBuilder().setHeader(KvTestMesh.header(b, BT, ""))
                .setData(ByteString.copyFrom(b.payload(), 0, 1000)).build();
        assertThatThrownBy(() -> KvTestMesh.put(channel, List.of(half)).get(1, TimeUnit.MINUTES)).satisfies(t ->
                assertThat(statusOf(t).getStatus().getDescription()).isEqualTo("blocks[0].data: the stream ended "
                        + "after 1000 of the block's " + LAYOUT.bytesPerBlock() + " bytes; the incomplete block was "
                        + "not stored"));
        assertThat(lookup(List.of(b.hashBytes())).getPresentBlocks()).isZero();
    }

    @Test
    void put_cancelledMidBlock_keepsTheBlocksCompletedBefore_andNothingOfTheHalfSentOne() {
        List<Block> seq = sequence(15, 2, BT, "");
        List<PutRequest> msgs = putMessages(seq, BT, "");
        CompletableFuture<PutResponse> answer = new CompletableFuture<>();
        ClientCallStreamObserver<PutRequest> s = (ClientCallStreamObserver<PutRequest>) KvCacheServiceGrpc
                .newStub(channel).put(KvTestMesh.observer(answer));
        s.onNext(msgs.get(0));
        s.onNext(PutRequest.newBuilder().setHeader(msgs.get(1).getHeader())
                .setData(msgs.get(1).getData().substring(0, 4096)).build());
        await().atMost(Duration.ofSeconds(30)).until(() -> lookup(hashes(seq)).getPresentBlocks() == 1);
        s.cancel("the gateway gave up", null);
        assertThatThrownBy(() -> answer.get(1, TimeUnit.MINUTES)).satisfies(t ->
                assertThat(statusOf(t).getStatus().getCode()).isEqualTo(Status.Code.CANCELLED));
        assertThat(lookup(hashes(seq)).getPresentBlocks()).isEqualTo(1);
        assertThat(KvTestMesh.get(channel, BT, List.of(seq.get(1).hashBytes()))).containsExactly((byte[]) null);
    }

    @Test
    void pin_keepsABlockPastEvictionPressure_untilUnpinned() throws Exception {
        Block pinned = sequence(16, 1, BT, "").getFirst();
        put(List.of(pinned), "");
        PinRequest pin = PinRequest.newBuilder().setModelFingerprint(fp()).setLayout(wire(BT))
                .addBlockHashes(pinned.hashBytes()).addBlockHashes(sequence(17, 1, BT, "").getFirst().hashBytes()).build();
        assertThat(stub.pin(pin).getPinnedList()).containsExactly(true, false);
        // 3x the capacity of both tiers together.
        put(sequence(18, 36, BT, ""), "");
        assertThat(lookup(List.of(pinned.hashBytes())).getPresentBlocks()).isEqualTo(1);
        assertThat(KvTestMesh.get(channel, BT, List.of(pinned.hashBytes())).getFirst()).isEqualTo(pinned.payload());

        UnpinRequest unpin = UnpinRequest.newBuilder().setModelFingerprint(fp()).setLayout(wire(BT))
                .addBlockHashes(pinned.hashBytes()).build();
        assertThat(stub.unpin(unpin).getUnpinnedList()).containsExactly(true);
        assertThat(stub.unpin(unpin).getUnpinnedList()).containsExactly(false);
        put(sequence(19, 36, BT, ""), "");
        assertThat(lookup(List.of(pinned.hashBytes())).getPresentBlocks()).isZero();
    }

    @Test
    void stats_reportsBothTiersOfTheModel_andPrometheusExposesTheMetrics() throws Exception {
        List<Block> seq = sequence(24, 2, BT, "");
        put(seq, "");
        KvTestMesh.get(channel, BT, hashes(seq));
        ModelStats m = stub.stats(StatsRequest.getDefaultInstance()).getModels(0);
        assertThat(m.getModel()).isEqualTo("mixtral-tiny");
        assertThat(m.getModelFingerprint()).isEqualTo(fp());
        assertThat(m.getLayout()).isEqualTo(wire(BT));
        assertThat(m.getTiersList()).extracting(x -> x.getTier()).containsExactly(Tier.TIER_DRAM, Tier.TIER_SSD);
        assertThat(m.getTiers(0).getHits()).isGreaterThanOrEqualTo(2);
        assertThat(m.getTiers(0).getCapacityBytes()).isEqualTo(4L * LAYOUT.bytesPerBlock());
        assertThat(m.getTiers(0).getBlocks()).isPositive();

        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + managementPort + "/actuator/prometheus")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).isEqualTo(200);
        String tags = "{model=\"mixtral-tiny\",tier=\"dram\"}";
        assertThat(r.body()).contains("moemesh_kvcache_tier_hits_total" + tags,
                "moemesh_kvcache_tier_misses_total{model=\"mixtral-tiny\",tier=\"ssd\"}",
                "moemesh_kvcache_tier_read_bytes_total" + tags, "moemesh_kvcache_tier_written_bytes_total" + tags,
                "moemesh_kvcache_tier_evictions_total" + tags, "moemesh_kvcache_tier_checksum_failures_total" + tags,
                "moemesh_kvcache_tier_blocks" + tags, "moemesh_kvcache_tier_used_bytes" + tags,
                "moemesh_kvcache_tier_capacity_bytes" + tags,
                "moemesh_kvcache_store_seconds_count{model=\"mixtral-tiny\"}",
                "moemesh_kvcache_restore_seconds_count{model=\"mixtral-tiny\"}",
                "moemesh_kvcache_demotions_total{model=\"mixtral-tiny\"}",
                "moemesh_kvcache_promotions_total{model=\"mixtral-tiny\"}",
                "moemesh_kvcache_declined_total{model=\"mixtral-tiny\"}",
                "moemesh_kvcache_ssd_disk_bytes{model=\"mixtral-tiny\"}");
    }
}
