package io.moemesh.kvcache.config;

import static io.moemesh.kvcache.support.KvTestMesh.hashes;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.moemesh.kvcache.KvCacheServiceApplication;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import io.moemesh.proto.kvcache.v1.PinRequest;
import io.moemesh.proto.kvcache.v1.PinResponse;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import io.moemesh.proto.kvcache.v1.PutResult;
import io.moemesh.proto.kvcache.v1.Tier;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * {@code moemesh.kvcache.policy} reaches the tiers: whole Spring contexts of the service over real gRPC (mutual TLS),
 * DRAM 4 blocks over SSD 8. The client does what the gateway does, a Lookup of each request's chain and then a Put
 * of its blocks: an older 3-block chain, then a newer 10-block one, so one of the older chain's blocks must go.
 * LRU drops the older chain's head (block 0 was touched first), so nothing of it is a prefix hit any more; the
 * conversation policy drops its tail (same key for a request's blocks, the deepest first), so its first two blocks
 * still are.
 */
class KvCachePolicyWiringTest {
    static final int BT = 16;
    static final KvLayout LAYOUT = KvTestMesh.layout(BT);
    @TempDir
    Path ssdDir;

    ConfigurableApplicationContext run(String... extra) {
        List<String> args = new ArrayList<>(KvTestMesh.args(ssdDir, BT, 4L * LAYOUT.bytesPerBlock(),
                8L * (LAYOUT.bytesPerBlock() + 44)));
        args.addAll(List.of(extra));
        return new SpringApplicationBuilder(KvCacheServiceApplication.class).run(args.toArray(String[]::new));
    }

    static LookupResponse lookup(ManagedChannel ch, List<ByteString> hashes) {
        return KvCacheServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES).lookup(LookupRequest
                .newBuilder().setModelFingerprint(ByteString.copyFrom(KvTestMesh.FINGERPRINT.bytes()))
                .setLayout(KvTestMesh.wire(BT)).addAllBlockHashes(hashes).build());
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            (default)                               | 2
            --moemesh.kvcache.policy=conversation   | 2
            --moemesh.kvcache.policy=lru            | 0""")
    void theConfiguredPolicy_choosesWhatLeaves_lruTheOlderChainsHead_conversationItsTail(String setting,
                                                                                         int olderStillHit)
            throws Exception {
        List<Block> older = KvTestMesh.sequence(1, 3, BT, "t");
        List<Block> newer = KvTestMesh.sequence(2, 10, BT, "t");
        try (ConfigurableApplicationContext ctx = setting.startsWith("--") ? run(setting) : run()) {
            ManagedChannel ch = KvTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
            try {
                for (List<Block> request : List.of(older, newer)) {
                    assertThat(lookup(ch, hashes(request)).getPresentBlocks()).isZero();
                    PutResponse r = KvTestMesh.put(ch, KvTestMesh.putMessages(request, BT, "t"))
                            .get(1, TimeUnit.MINUTES);
                    assertThat(r.getResultsList()).extracting(x -> x.getOutcome())
                            .containsOnly(PutOutcome.PUT_OUTCOME_STORED);
                }
                // 13 blocks in room for 12: exactly one of the older chain's blocks left (the newer one's first
                // blocks are in DRAM or SSD either way).
                assertThat(lookup(ch, hashes(older)).getPresentBlocks())
                        .isEqualTo(olderStillHit);
                assertThat(lookup(ch, hashes(newer)).getTiersList())
                        .hasSize(10).doesNotContain(Tier.TIER_UNSPECIFIED);
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * The gateway's Attend offload stores a long sequence's old blocks and pins them right after: its Put says so
     * (pin_next), and the conversation policy, which has learned to decline chains' last blocks, is not asked. A
     * declined block could not be pinned, and the sequence would stay in the gateway's pool for good.
     */
    @Test
    void aPinNextPut_ofALastBlockTheConversationPolicyLearnedToDecline_isStored_andThenPinned() throws Exception {
        try (ConfigurableApplicationContext ctx = run()) {
            ManagedChannel ch = KvTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
            try {
                learnToDeclineLastBlocks(ch);
                List<Block> seq = KvTestMesh.sequence(3, 3, BT, "t");
                assertThat(lookup(ch, hashes(seq)).getPresentBlocks()).isZero();
                PutResponse plain = KvTestMesh.put(ch, KvTestMesh.putMessages(seq, BT, "t")).get(1, TimeUnit.MINUTES);
                assertThat(plain.getResultsList()).extracting(PutResult::getOutcome).as("ordinary write-backs")
                        .containsExactly(PutOutcome.PUT_OUTCOME_STORED, PutOutcome.PUT_OUTCOME_STORED,
                                PutOutcome.PUT_OUTCOME_DECLINED);

                List<PutRequest> pinNext = KvTestMesh.putMessages(seq.subList(2, 3), BT, "t").stream()
                        .map(m -> m.hasHeader() ? m.toBuilder().setHeader(m.getHeader().toBuilder().setPinNext(true))
                                .build() : m).toList();
                PutResponse offload = KvTestMesh.put(ch, pinNext).get(1, TimeUnit.MINUTES);

                assertThat(offload.getResults(0).getOutcome()).isEqualTo(PutOutcome.PUT_OUTCOME_STORED);
                PinResponse pinned = KvCacheServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES)
                        .pin(PinRequest.newBuilder().setModelFingerprint(ByteString.copyFrom(KvTestMesh.FINGERPRINT
                                .bytes())).setLayout(KvTestMesh.wire(BT)).addBlockHashes(seq.get(2).hashBytes())
                                .build());
                assertThat(pinned.getPinnedList()).containsExactly(true);
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * The gateway's swap-out stores a preempted sequence's blocks to read them back on resume: its Puts say so
     * (swap_out), and the conversation policy, which has learned to decline the last block of the chain a Lookup
     * announced (the prompt's), is not asked. A declined block would end the resume's restore there, and every block
     * the sequence generated after it would be stored for nothing and recomputed.
     */
    @Test
    void aSwapOutPut_ofTheAnnouncedChainsLastBlock_isStored_soTheResumesLookupFindsTheWholeSequence()
            throws Exception {
        try (ConfigurableApplicationContext ctx = run()) {
            ManagedChannel ch = KvTestMesh.channel(ctx.getBean(GrpcServerLifecycle.class).port());
            try {
                learnToDeclineLastBlocks(ch);
                List<Block> seq = KvTestMesh.sequence(4, 4, BT, "t");
                // The prompt: blocks 0..1; the sequence generated blocks 2..3 before it was preempted.
                assertThat(lookup(ch, hashes(seq.subList(0, 2))).getPresentBlocks()).isZero();
                List<PutRequest> swapOut = KvTestMesh.putMessages(seq, BT, "t").stream()
                        .map(m -> m.hasHeader() ? m.toBuilder().setHeader(m.getHeader().toBuilder().setSwapOut(true))
                                .build() : m).toList();

                PutResponse r = KvTestMesh.put(ch, swapOut).get(1, TimeUnit.MINUTES);

                assertThat(r.getResultsList()).extracting(PutResult::getOutcome)
                        .containsOnly(PutOutcome.PUT_OUTCOME_STORED);
                assertThat(lookup(ch, hashes(seq)).getPresentBlocks()).isEqualTo(4);
            } finally {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * What the policy learns from (ConversationPolicy.LAST_BLOCK_EVIDENCE = 100 such conversations): a first turn's
     * last block is never reused by the next turn, the blocks before it are.
     */
    private static void learnToDeclineLastBlocks(ManagedChannel ch) {
        long id = 1;
        for (int c = 0; c < 100; c++) {
            ByteString head = hash(id++);
            lookup(ch, List.of(hash(0), head, hash(id++)));
            lookup(ch, List.of(hash(0), head, hash(id++), hash(id++)));
        }
    }

    /** A 32-byte hash of a block only Lookups name (the policy learns from chains, whatever their blocks). */
    private static ByteString hash(long id) {
        return ByteString.copyFrom(ByteBuffer.allocate(32).putLong(0, id).putLong(8, ~id).array());
    }

    @Test
    void anUnknownPolicy_refusesTheStart_namingThePropertyAndTheKnownPolicies() {
        assertThatThrownBy(() -> run("--moemesh.kvcache.policy=belady").close())
                .rootCause().hasMessage("moemesh.kvcache.policy (MOEMESH_KVCACHE_POLICY): unknown policy 'belady'; "
                        + "known: conversation, lru");
    }
}
