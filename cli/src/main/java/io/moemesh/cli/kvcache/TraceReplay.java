package io.moemesh.cli.kvcache;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.LruPolicy;
import io.moemesh.kvcache.policy.StorePolicies;
import io.moemesh.kvcache.policy.StorePolicy;
import io.moemesh.kvcache.tier.FsyncPolicy;
import io.moemesh.kvcache.tier.SsdConfig;
import io.moemesh.kvcache.tier.SsdTier;
import io.moemesh.kvcache.tier.TieredKvStore;
import io.moemesh.model.kv.ModelFingerprint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * Replays a prefix-cache trace through the real {@link TieredKvStore}: a {@code DramTier} over an {@code SsdTier}
 * whose segment files live in a temporary directory (deleted afterwards), exclusive, with demotion and promotion.
 * Blocks are tiny (one float pair, {@link #LAYOUT}) so only the policy's decisions cost anything; a block's bytes
 * are derived from its id. Per request: the hit is the longest leading run of its chain stored in either tier
 * ({@code lookup}), then every block is read (a hit, promoted from SSD) or stored, block 0 first.
 */
final class TraceReplay {
    /** 1 layer, 1 KV head, headDim 1, 1 token: K and V are one float each, 8 bytes. */
    static final KvLayout LAYOUT = new KvLayout(1, 1, 1, 1);
    private static final ModelFingerprint MODEL = ModelFingerprint.of(new byte[ModelFingerprint.BYTES]);

    private TraceReplay() {
    }

    /** Prefix-hit blocks per request of {@code policy} on the trace, DRAM {@code dramBlocks} over SSD {@code ssdBlocks}. */
    static long[] replay(PrefixTrace trace, int dramBlocks, int ssdBlocks, StorePolicy policy) {
        Path dir;
        try {
            dir = Files.createTempDirectory("moemesh-kvcache-replay");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create a temporary directory for the SSD tier", e);
        }
        try {
            return replayIn(dir, trace, dramBlocks, ssdBlocks, policy);
        } finally {
            deleteTree(dir);
        }
    }

    private static long[] replayIn(Path dir, PrefixTrace trace, int dramBlocks, int ssdBlocks, StorePolicy policy) {
        int recordBytes = recordBytes(dir.resolve("probe"));
        long[] tick = {0};
        // The same policy objects the service builds for a model (StorePolicy.create), sized by the total capacity.
        StorePolicies policies = policy.create(dramBlocks + ssdBlocks);
        SsdConfig ssd = SsdConfig.defaults(dir.resolve("ssd"), (long) ssdBlocks * recordBytes)
                .withFsync(FsyncPolicy.NEVER);
        SsdTier lower = SsdTier.open(ssd, LAYOUT, MODEL, policies.lower(), () -> tick[0]);
        long[] hits = new long[trace.requests().size()];
        try (TieredKvStore store = new TieredKvStore(LAYOUT, (long) dramBlocks * LAYOUT.bytesPerBlock(),
                policies.dram(), lower, policies.admission(), policies.observer(), () -> tick[0])) {
            for (int r = 0; r < hits.length; r++) {
                long[] ids = trace.requests().get(r);
                List<BlockKey> chain = new ArrayList<>(ids.length);
                for (long id : ids) {
                    chain.add(key(id));
                }
                store.observe(chain, trace.arrivals().get(r));
                hits[r] = store.lookup(chain).presentBlocks();
                for (int j = 0; j < ids.length; j++) {
                    tick[0]++;
                    AccessHint hint = AccessHint.atChainPosition(j);
                    if (store.get(chain.get(j), hint).isEmpty()) {
                        store.put(block(chain.get(j), ids[j]), hint);
                    }
                }
            }
        }
        return hits;
    }

    /** Bytes one block occupies in the SSD tier's segments (its capacity is counted in records). */
    private static int recordBytes(Path probeDir) {
        try (SsdTier probe = SsdTier.open(SsdConfig.defaults(probeDir, 1 << 20), LAYOUT, MODEL, new LruPolicy())) {
            return probe.recordBytes();
        }
    }

    /** A distinct 32-byte key per id: a bijective mix of it in the first 8 bytes (spreads the hash), then the id. */
    static BlockKey key(long id) {
        ByteBuffer b = ByteBuffer.allocate(BlockKey.BYTES);
        b.putLong(id * 0x9E3779B97F4A7C15L).putLong(id);
        return BlockKey.of(b.array());
    }

    private static KvBlock block(BlockKey key, long id) {
        return KvBlock.of(key, LAYOUT, new float[] {id, -id});
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            // A leftover temp directory is harmless; the replay's result stands.
        }
    }
}
