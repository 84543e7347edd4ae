package io.moemesh.kvcache.policy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.kvcache.grpc.KvCacheGrpcService;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TestBlocks;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import io.moemesh.proto.kvcache.v1.LookupResponse;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the conversation policy learns from the service's {@code Lookup}s (the real {@link KvCacheGrpcService} over a
 * store whose policy it is, called in this thread). The gateway's Lookup carries a request's whole chain and says how
 * many leading blocks it holds ({@code held_blocks}): a next turn whose history is still in the gateway is then
 * matched from block 0 and counted as the continuation of the turn before, while the answer counts only the blocks
 * after the held ones. A sequence asked about again ({@code repeat}: a resume with its generated blocks) is not a
 * next turn of itself.
 */
class LookupAnnouncementTest {
    @TempDir
    Path dir;
    private ConversationPolicy policy;
    private TieredKvStore store;
    private ServedModels models;
    private KvCacheGrpcService service;

    @BeforeEach
    void open() {
        policy = new ConversationPolicy(64, new double[] {0});
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(dir, 32L * TestBlocks.RECORD_BYTES), TestBlocks.LAYOUT,
                TestBlocks.MODEL, policy.newTierPolicy());
        store = new TieredKvStore(TestBlocks.LAYOUT, 32L * TestBlocks.BLOCK_BYTES,
                policy.newTierPolicy(), ssd, policy, policy, System::nanoTime);
        models = new ServedModels(List.of(new ServedModel("tiny", TestBlocks.MODEL, TestBlocks.LAYOUT.kvHeads(),
                TestBlocks.LAYOUT, store, ssd)));
        service = new KvCacheGrpcService(models, new KvCacheMetrics(new SimpleMeterRegistry(), models));
    }

    @AfterEach
    void close() {
        models.close();
    }

    /** A Lookup of blocks 1..{@code n} of one chain (test keys) with {@code held} of them held by the caller. */
    private static LookupRequest lookup(int n, int held, boolean repeat) {
        LookupRequest.Builder r = LookupRequest.newBuilder()
                .setModelFingerprint(ByteString.copyFrom(TestBlocks.MODEL.bytes()))
                .setLayout(BlockLayout.newBuilder().setBlockTokens(TestBlocks.LAYOUT.blockTokens()))
                .setHeldBlocks(held).setRepeat(repeat);
        LongStream.rangeClosed(1, n).forEach(i -> r.addBlockHashes(ByteString.copyFrom(TestBlocks.key(i).bytes())));
        return r.build();
    }

    private LookupResponse call(LookupRequest req) throws Exception {
        CompletableFuture<LookupResponse> done = new CompletableFuture<>();
        service.lookup(req, new StreamObserver<>() {
            @Override
            public void onNext(LookupResponse value) {
                done.complete(value);
            }

            @Override
            public void onError(Throwable t) {
                done.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
            }
        });
        return done.get(30, TimeUnit.SECONDS);
    }

    @Test
    void aSecondTurnWhoseHistoryTheCallerHolds_isObservedAsTheNextTurn_andTheAnswerCountsFromTheHeldBlocks()
            throws Exception {
        call(lookup(4, 0, false)); // turn 1: blocks 1..4
        double firstTurns = policy.continuationOfTurn(0);
        for (long i = 1; i <= 6; i++) {
            store.put(TestBlocks.block(i));
        }

        LookupResponse r = call(lookup(6, 4, false)); // turn 2: blocks 1..6, the first 4 held by the caller

        assertThat(policy.continuationOfTurn(0)).as("turn 1 got a next turn").isGreaterThan(firstTurns);
        assertThat(r.getCountedFrom()).isEqualTo(4);
        assertThat(r.getPresentBlocks()).as("blocks 5 and 6, counted from the held ones").isEqualTo(2);
        assertThat(r.getTiersCount()).isEqualTo(2);
    }

    @Test
    void aRepeat_ofASequenceWhoseChainGrew_isNotObservedAsANextTurnOfItself() throws Exception {
        call(lookup(4, 0, false));
        call(lookup(6, 4, false));
        double secondTurns = policy.continuationOfTurn(1);

        call(lookup(8, 0, true)); // turn 2 resumed after a preemption, with two generated blocks

        assertThat(policy.continuationOfTurn(1)).isEqualTo(secondTurns);
        call(lookup(8, 0, false)); // the same chain as a new request: turn 2 did get a next turn
        assertThat(policy.continuationOfTurn(1)).isGreaterThan(secondTurns);
    }

    @Test
    void heldBlocksPastTheChain_isInvalidArgument_namingTheField() {
        assertThatThrownBy(() -> call(lookup(2, 3, false))).isInstanceOf(ExecutionException.class)
                .satisfies(e -> {
                    Status s = Status.fromThrowable(e.getCause());
                    assertThat(s.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                    assertThat(s.getDescription()).isEqualTo("held_blocks: 3, but block_hashes has only 2 (the "
                            + "leading blocks of the chain the caller holds)");
                });
    }
}
