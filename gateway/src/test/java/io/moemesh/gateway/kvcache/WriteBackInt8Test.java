package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.RealKvCacheService;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.kvcache.tier.PayloadEncoding;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The end-to-end check of fetched blocks against a real kvcache-service whose SSD tier stores int8
 * ({@code moemesh.kvcache.int8}): a block demoted there comes back as the int8 round trip of what this gateway put,
 * which is what it stored, not another block's bytes; before, every such block failed the check and was recomputed.
 */
class WriteBackInt8Test {
    @TempDir
    Path ssd;

    @Test
    void blocksBackFromAnInt8SsdTier_passTheEndToEndCheck_andOtherBytesStillFailIt() {
        Path dir = TestModels.dir(TestModels.MIXTRAL);
        ModelConfig c = ModelConfigReader.read(dir);
        ModelFingerprint fp = ModelFingerprint.of(dir);
        KvPayload shape = new KvPayload(c.numLayers(), c.numKvHeads(), 16, c.headDim());
        // DRAM holds one block: each next one demotes the one before to the int8 SSD tier
        try (RealKvCacheService kv = new RealKvCacheService(dir, ssd, 16, shape.bytes(), null, PayloadEncoding.INT8)) {
            KvCacheClient client = new KvCacheClient(NettyChannelBuilder.forTarget(kv.endpoint(),
                    TestCertificates.credentials("gateway").channel()).build(), kv.endpoint(), fp, shape, null);
            WriteBack writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
            try {
                List<BlockContents> chain = chain(shape, fp, 4);
                chain.forEach(writeBack::accept);
                await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.writtenBlocks() == 4);
                List<byte[]> got = client.get(chain.stream().map(BlockContents::hash).toList(),
                        Duration.ofSeconds(10));
                assertThat(got).hasSize(4);
                int fromInt8 = 0;
                for (int i = 0; i < got.size(); i++) {
                    BlockHash h = chain.get(i).hash();
                    assertThat(writeBack.memory().heldOtherBytes(h, got.get(i))).as("block %d", i).isFalse();
                    if (StoredBlocks.crc32c(got.get(i)) != writeBack.memory().checksum(h)) {
                        fromInt8++;
                    }
                    byte[] other = got.get(i).clone();
                    other[5] ^= 1;
                    assertThat(writeBack.memory().heldOtherBytes(h, other)).as("block %d, one bit flipped", i).isTrue();
                }
                assertThat(fromInt8).as("blocks that came back through the int8 SSD tier").isPositive();
            } finally {
                writeBack.close(Duration.ZERO);
                client.close();
            }
        }
    }

    /** Blocks 0..n-1 of one chain with random keys and values (which int8 cannot hold exactly). */
    private static List<BlockContents> chain(KvPayload shape, ModelFingerprint fp, int n) {
        Random random = new Random(42);
        List<BlockContents> out = new ArrayList<>();
        BlockHash parent = null;
        for (int i = 0; i < n; i++) {
            int[] tokens = new int[16];
            for (int t = 0; t < tokens.length; t++) {
                tokens[t] = 1 + random.nextInt(100);
            }
            BlockHash h = BlockHash.of(parent, tokens, 0, 16, fp, "t");
            float[][] k = new float[shape.layers()][shape.floatsPerLayer()];
            float[][] v = new float[shape.layers()][shape.floatsPerLayer()];
            for (int l = 0; l < shape.layers(); l++) {
                for (int j = 0; j < k[l].length; j++) {
                    k[l][j] = (float) random.nextGaussian();
                    v[l][j] = (float) random.nextGaussian();
                }
            }
            out.add(new BlockContents(h, parent, tokens, "t", i, k, v));
            parent = h;
        }
        return out;
    }
}
