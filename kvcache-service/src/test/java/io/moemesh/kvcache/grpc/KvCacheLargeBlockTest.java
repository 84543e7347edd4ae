package io.moemesh.kvcache.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.metrics.KvCacheMetrics;
import io.moemesh.kvcache.policy.AdmissionPolicy;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.serving.ServedModel;
import io.moemesh.kvcache.serving.ServedModels;
import io.moemesh.kvcache.support.KvTestMesh;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TestBlocks;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.proto.kvcache.v1.BlockLayout;
import io.moemesh.proto.kvcache.v1.GetRequest;
import io.moemesh.proto.kvcache.v1.GetResponse;
import io.moemesh.proto.kvcache.v1.KvCacheServiceGrpc;
import io.moemesh.proto.kvcache.v1.PutBlockHeader;
import io.moemesh.proto.kvcache.v1.PutOutcome;
import io.moemesh.proto.kvcache.v1.PutRequest;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.tls.MeshCredentials;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A block larger than a chunk, over the real service and tiers on a TLS socket: Put takes it in 1 MiB chunks (the
 * gateway's) and Get sends it back in chunks of at most 1 MiB, in order, the last one marked. The tiny test models
 * have 1 KiB per token, so their blocks (at most 1,024 tokens, the gateway's largest) fit one chunk: this store has
 * the layout of a larger model instead (4 layers, 8 KV heads, head dim 64, 160 tokens: 2.5 MiB a block).
 */
class KvCacheLargeBlockTest {
    private static final KvLayout LAYOUT = new KvLayout(4, 8, 64, 160);
    private static final int CHUNK = 1 << 20;
    @TempDir
    Path dir;
    private ServedModels models;
    private MeshCredentials credentials;
    private GrpcServerLifecycle server;
    private ManagedChannel channel;

    @BeforeEach
    void start() {
        long record = LAYOUT.bytesPerBlock() + 64L;
        SsdTier ssd = SsdTier.open(SsdConfig.defaults(dir, 4 * record), LAYOUT, TestBlocks.MODEL, new LruPolicy());
        TieredKvStore store = new TieredKvStore(LAYOUT, 2L * LAYOUT.bytesPerBlock(), new LruPolicy(), ssd,
                AdmissionPolicy.ADMIT_ALL, System::nanoTime);
        models = new ServedModels(List.of(new ServedModel("large", TestBlocks.MODEL, 8, LAYOUT, store, ssd)));
        credentials = MeshCredentials.load(KvTestMesh.certs().settings("kvcache"), "tls");
        server = new GrpcServerLifecycle("test-kvcache", "127.0.0.1", 0, credentials.server(), 16 << 20,
                Duration.ofMillis(200), List.of(new KvCacheGrpcService(models,
                        new KvCacheMetrics(new SimpleMeterRegistry(), models))), List.of(new PeerIdentityInterceptor()));
        server.start();
        channel = KvTestMesh.channel(server.port());
    }

    @AfterEach
    void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.stop();
        credentials.close();
        models.close();
    }

    private static BlockLayout wire() {
        return BlockLayout.newBuilder().setBlockTokens(LAYOUT.blockTokens()).setNumLayers(LAYOUT.layers())
                .setNumKvHeads(LAYOUT.kvHeads()).setHeadDim(LAYOUT.headDim()).build();
    }

    @Test
    void aBlockLargerThanAChunk_isPutAndGotInChunksOfAtMost1MiB_inOrder() throws Exception {
        Random r = new Random(11);
        int[] tokens = r.ints(LAYOUT.blockTokens(), 0, 1000).toArray();
        BlockHash hash = BlockHash.of(null, tokens, 0, tokens.length, TestBlocks.MODEL, "");
        ByteBuffer floats = ByteBuffer.allocate(LAYOUT.bytesPerBlock()).order(ByteOrder.LITTLE_ENDIAN);
        while (floats.hasRemaining()) {
            floats.putFloat((float) r.nextGaussian());
        }
        byte[] payload = floats.array();
        PutBlockHeader.Builder header = PutBlockHeader.newBuilder()
                .setModelFingerprint(ByteString.copyFrom(TestBlocks.MODEL.bytes())).setLayout(wire())
                .setBlockHash(ByteString.copyFrom(hash.bytes())).setParentHash(ByteString.copyFrom(new byte[32]));
        for (int t : tokens) {
            header.addTokenIds(t);
        }
        List<PutRequest> put = new ArrayList<>();
        for (int off = 0; off < payload.length; off += CHUNK) {
            PutRequest.Builder m = PutRequest.newBuilder()
                    .setData(ByteString.copyFrom(payload, off, Math.min(CHUNK, payload.length - off)));
            put.add(off == 0 ? m.setHeader(header).build() : m.build());
        }

        assertThat(KvTestMesh.put(channel, put).get(1, TimeUnit.MINUTES).getResults(0).getOutcome())
                .isEqualTo(PutOutcome.PUT_OUTCOME_STORED);
        Iterator<GetResponse> it = KvCacheServiceGrpc.newBlockingStub(channel).withDeadlineAfter(1, TimeUnit.MINUTES)
                .get(GetRequest.newBuilder().setModelFingerprint(ByteString.copyFrom(TestBlocks.MODEL.bytes()))
                        .setLayout(wire()).addBlockHashes(ByteString.copyFrom(hash.bytes())).build());
        List<Long> offsets = new ArrayList<>();
        List<Boolean> last = new ArrayList<>();
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        while (it.hasNext()) {
            GetResponse m = it.next();
            assertThat(m.getFound()).isTrue();
            assertThat(m.getData().size()).isLessThanOrEqualTo(CHUNK);
            offsets.add(m.getOffset());
            last.add(m.getLast());
            got.writeBytes(m.getData().toByteArray());
        }

        assertThat(offsets).containsExactly(0L, (long) CHUNK, 2L * CHUNK);
        assertThat(last).containsExactly(false, false, true);
        assertThat(got.toByteArray()).isEqualTo(payload);
    }
}
