package io.moemesh.kvcache.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.kvcache.attend.BlockAttention;
import io.moemesh.kvcache.attend.PartialAttention;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.kvcache.tier.ForwardingKvTier;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.kvcache.v1.AttendRequest;
import io.moemesh.proto.kvcache.v1.AttendResponse;
import java.lang.ref.WeakReference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.function.IntConsumer;
import org.awaitility.core.ConditionTimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Attend reads its blocks one at a time, as plain objects (no server): DRAM holds one block, so every other block
 * comes from the SSD tier, through a {@link WatchedTier} that sees each read and each block it hands out.
 */
class KvCacheAttendStreamingTest {
    private static final int BT = 16;
    private static final KvLayout LAYOUT = KvTestMesh.layout(BT);
    private static final int HEADS = KvTestMesh.CONFIG.numHeads();

    @TempDir
    Path dir;
    private WatchedTier lower;
    private ServedModels models;
    private KvCacheGrpcService service;

    private List<Block> storedSequence(long seed, int n, int... skipped) {
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(dir, (n + 4L) * (LAYOUT.bytesPerBlock() + 64)), LAYOUT,
                KvTestMesh.FINGERPRINT, new LruPolicy());
        lower = new WatchedTier(ssd);
        TieredKvStore store = new TieredKvStore(LAYOUT, LAYOUT.bytesPerBlock(), new LruPolicy(), lower,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime);
        models = new ServedModels(List.of(new ServedModel("mixtral", KvTestMesh.FINGERPRINT, HEADS, LAYOUT, store,
                ssd)));
        service = new KvCacheGrpcService(models, new KvCacheMetrics(new SimpleMeterRegistry(), models));
        List<Block> seq = KvTestMesh.sequence(seed, n, BT, "");
        for (int i = 0; i < n; i++) {
            int at = i;
            if (Arrays.stream(skipped).noneMatch(s -> s == at)) {
                store.put(KvBlock.of(BlockKey.of(seq.get(i).hash()), LAYOUT, seq.get(i).floats()));
            }
        }
        return seq;
    }

    @AfterEach
    void close() {
        if (models != null) {
            models.close();
        }
    }

    private static float[] query(int tokens, long seed) {
        Random r = new Random(seed);
        float[] q = new float[tokens * HEADS * LAYOUT.headDim()];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) r.nextGaussian();
        }
        return q;
    }

    private static AttendRequest request(List<Block> blocks, int layer, float[] query, List<Long> positions) {
        ByteBuffer q = ByteBuffer.allocate(query.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        q.asFloatBuffer().put(query);
        return AttendRequest.newBuilder().setModelFingerprint(ByteString.copyFrom(KvTestMesh.FINGERPRINT.bytes()))
                .setLayout(KvTestMesh.wire(BT)).setLayer(layer)
                .setQuery(Tensor.newBuilder().setDtype(DType.DTYPE_F32).addShape(positions.size()).addShape(HEADS)
                        .addShape(LAYOUT.headDim()).setData(ByteString.copyFrom(q.array())))
                .addAllPositions(positions).addAllBlockHashes(KvTestMesh.hashes(blocks)).build();
    }

    private static float[] floats(Tensor t) {
        float[] f = new float[t.getData().size() / Float.BYTES];
        t.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    private CompletableFuture<AttendResponse> attend(AttendRequest req) {
        CompletableFuture<AttendResponse> answer = new CompletableFuture<>();
        service.attend(req, KvTestMesh.observer(answer));
        return answer;
    }

    @Test
    void attend_overManyBlocks_readOneAtATime_isBitForBitAttentionOverTheWholeList() {
        List<Block> seq = storedSequence(61, 12);
        List<Long> positions = List.of(5L, 100L, 191L, 500L); // 500: past the blocks, sees all 192 positions
        float[] q = query(positions.size(), 62);
        int layer = 1;

        AttendResponse a = attend(request(seq, layer, q, positions)).join();

        assertThat(a.getTiersCount()).isEqualTo(12);
        float[] out = floats(a.getOutputs());
        float[] lse = floats(a.getLse());
        List<KvBlock> all = seq.stream().map(b -> KvBlock.of(BlockKey.of(b.hash()), LAYOUT, b.floats())).toList();
        int n = HEADS * LAYOUT.headDim();
        for (int t = 0; t < positions.size(); t++) {
            int visible = (int) Math.min(12L * BT, positions.get(t) + 1);
            PartialAttention whole = BlockAttention.attend(Arrays.copyOfRange(q, t * n, (t + 1) * n), HEADS, all,
                    LAYOUT, layer, visible, BlockAttention.defaultScale(LAYOUT.headDim()));
            assertThat(Arrays.copyOfRange(out, t * n, (t + 1) * n)).as("token %d", t)
                    .containsExactly(whole.output());
            assertThat(Arrays.copyOfRange(lse, t * HEADS, (t + 1) * HEADS)).as("token %d", t)
                    .containsExactly(whole.lse());
        }
    }

    /**
     * While Attend reads block n from the SSD tier, every block it read before n − 1 must already be garbage (n − 1
     * may still be DRAM's one block and the loop's variable): the call holds O(1) blocks, not the whole chain.
     */
    @Test
    void attend_holdsAtMostTwoBlocksAtOnce_everyEarlierBlockIsCollectableWhileItReadsTheNext() {
        List<Block> seq = storedSequence(63, 8);
        int[] mostAlive = {0};
        boolean[] gaveUp = {false};
        lower.beforeRead = reads -> {
            if (!gaveUp[0] && reads >= 2) {
                try {
                    await().atMost(Duration.ofSeconds(5)).pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(20))
                            .until(() -> {
                                System.gc();
                                return lower.alive(reads - 1) == 0;
                            });
                } catch (ConditionTimeoutException held) {
                    gaveUp[0] = true; // the blocks are held: counted below, no need to wait again
                }
            }
            mostAlive[0] = Math.max(mostAlive[0], lower.alive(reads));
        };

        AttendResponse a = attend(request(seq, 0, query(1, 64), List.of(1000L))).join();

        assertThat(a.getTiersCount()).isEqualTo(8);
        assertThat(lower.reads()).as("every block from SSD: each one's promotion demotes the one before")
                .isEqualTo(8);
        assertThat(mostAlive[0]).as("blocks read from SSD and still reachable when the next one was read")
                .isLessThanOrEqualTo(2);
    }

    @Test
    void attend_onceTheCallIsCancelled_readsNoFurtherBlock_andAnswersNothing() {
        List<Block> seq = storedSequence(65, 8);
        Context.CancellableContext call = Context.current().withCancellation();
        lower.beforeRead = reads -> {
            if (reads == 2) {
                call.cancel(null); // while the third block is read
            }
        };

        CompletableFuture<AttendResponse> answer = new CompletableFuture<>();
        call.run(() -> service.attend(request(seq, 0, query(1, 66), List.of(1000L)), KvTestMesh.observer(answer)));

        assertThat(lower.reads()).as("blocks 0-2 read, then the loop stops").isEqualTo(3);
        assertThat(answer).isCompletedExceptionally();
        assertThat(answer.handle((r, t) -> t).join()).isInstanceOfSatisfying(StatusRuntimeException.class,
                e -> assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.CANCELLED));
    }

    @Test
    void attend_withABlockMissingMidway_isNotFoundNamingIt_andReadsNothingPastIt() {
        List<Block> seq = storedSequence(67, 6, 2);

        CompletableFuture<AttendResponse> answer = attend(request(seq, 0, query(1, 68), List.of(1000L)));

        assertThat(answer.handle((r, t) -> t).join()).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
            assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.NOT_FOUND);
            assertThat(e.getStatus().getDescription()).isEqualTo("block_hashes[2]: the block is not stored");
        });
        assertThat(lower.asked).containsExactly(BlockKey.of(seq.get(0).hash()), BlockKey.of(seq.get(1).hash()),
                BlockKey.of(seq.get(2).hash()));
    }

    /** The real SSD tier, recording each read and holding the blocks it hands out only weakly. */
    private static final class WatchedTier extends ForwardingKvTier {
        private final SsdTier ssd;
        final List<BlockKey> asked = new ArrayList<>();
        private final List<WeakReference<KvBlock>> handedOut = new ArrayList<>();
        /** Called before each read with the number of reads before it. */
        IntConsumer beforeRead = reads -> { };

        WatchedTier(SsdTier ssd) {
            super(ssd);
            this.ssd = ssd;
        }

        synchronized int reads() {
            return asked.size();
        }

        /** Blocks of the first {@code reads} reads that are still reachable. */
        synchronized int alive(int reads) {
            return (int) handedOut.subList(0, Math.min(Math.max(reads, 0), handedOut.size())).stream()
                    .filter(r -> r.get() != null).count();
        }

        @Override
        public Optional<KvBlock> get(BlockKey key, AccessHint hint) {
            beforeRead.accept(reads());
            synchronized (this) {
                asked.add(key);
            }
            Optional<KvBlock> b = ssd.get(key, hint);
            synchronized (this) {
                handedOut.add(new WeakReference<>(b.orElse(null)));
            }
            return b;
        }
    }
}
