package io.moemesh.kvcache.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.support.KvTestMesh.Block;
import io.moemesh.kvcache.tier.PayloadEncoding;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.proto.kvcache.v1.PutResponse;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Put with int8 SSD storage on, through the service's Put stream as plain objects (no server): a block int8 cannot
 * hold is refused before anything is acknowledged, since the put would land in DRAM and its demotion drop it.
 */
class KvCacheInt8PutTest {
    private static final int BT = 16;
    private static final KvLayout LAYOUT = KvTestMesh.layout(BT);

    @TempDir
    Path dir;

    @Test
    void put_ofANonFiniteBlock_underInt8Storage_isInvalidArgumentNamingItsData_andNothingOfItIsStored() {
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(dir, 16L * (LAYOUT.bytesPerBlock() + 64))
                .withEncoding(PayloadEncoding.INT8), LAYOUT, KvTestMesh.FINGERPRINT, new LruPolicy());
        TieredKvStore store = new TieredKvStore(LAYOUT, 4L * LAYOUT.bytesPerBlock(), new LruPolicy(), ssd,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime);
        try (ServedModels models = new ServedModels(List.of(new ServedModel("mixtral", KvTestMesh.FINGERPRINT,
                KvTestMesh.CONFIG.numHeads(), LAYOUT, store, ssd)))) {
            KvCacheGrpcService service = new KvCacheGrpcService(models,
                    new KvCacheMetrics(new SimpleMeterRegistry(), models));
            List<Block> seq = KvTestMesh.sequence(41, 2, BT, "");
            seq.get(1).floats()[3] = Float.NaN;

            CompletableFuture<PutResponse> answer = new CompletableFuture<>();
            StreamObserver<PutRequest> put = service.put(KvTestMesh.observer(answer));
            KvTestMesh.putMessages(seq, BT, "").forEach(put::onNext);
            put.onCompleted();

            assertThat(answer).isCompletedExceptionally();
            Throwable error = answer.handle((r, t) -> t).join();
            assertThat(error).isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
                assertThat(e.getStatus().getDescription()).startsWith("blocks[1].data: float 3 is NaN")
                        .contains("int8 SSD storage cannot hold non-finite values");
            });
            BlockKey nan = BlockKey.of(seq.get(1).hash().bytes());
            assertThat(store.contains(nan)).isFalse();
            assertThat(store.contains(BlockKey.of(seq.get(0).hash().bytes())))
                    .as("the finite block before it in the stream").isTrue();
        }
    }
}
