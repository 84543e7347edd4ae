package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.time.Duration;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The fetch counters of {@link RemotePrefixes} against the in-memory kvcache.v1 service, the test thread acting as
 * the engine thread: blocks another sequence registered locally while the fetch was in flight are already there when
 * it is imported, so they are not fetched blocks, and a resume that brought nothing in is no restore. Before, the
 * counters took every block of the fetched run ({@code importBlocks} returns the blocks findable afterwards).
 */
class RemotePrefixesCountTest {
    private static final KvPayload SHAPE = WriteBackTest.LAYOUT;
    private final FakeKvCacheService kv = new FakeKvCacheService(SHAPE.blockTokens());
    private final KvCacheClient client = new KvCacheClient(NettyChannelBuilder.forTarget(kv.endpoint(),
            TestCertificates.credentials("gateway").channel()).build(), kv.endpoint(), WriteBackTest.MODEL, SHAPE, null);
    private final PrefixCachingKvCache cache = new PrefixCachingKvCache(SHAPE.layers(),
            SHAPE.kvHeads() * SHAPE.headDim(), SHAPE.blockTokens(), 16, WriteBackTest.MODEL, true);
    private WriteBack writeBack;
    private RemotePrefixes remote;
    /** Four blocks only the service holds; the context is their tokens and one more. */
    private final List<BlockContents> chain = WriteBackTest.chain(4, 5);
    private final int[] context = IntStream.concat(chain.stream().flatMapToInt(b -> IntStream.of(b.tokens())),
            IntStream.of(1)).toArray();

    @BeforeEach
    void start() {
        for (BlockContents b : chain) {
            kv.blocks.put(ByteString.copyFrom(b.hash().bytes()), SHAPE.encode(b.keys(), b.values()));
        }
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        remote = new RemotePrefixes(cache, client, writeBack, new TransferRates(), Duration.ofSeconds(20), 1,
                RemotePrefixes.Mode.SWAP, RemotePrefixes.fetchThreads(1));
    }

    @AfterEach
    void stop() {
        remote.close();
        writeBack.close(Duration.ZERO);
        client.close();
        kv.close();
    }

    @Test
    void fetchedBlocks_countOnlyTheBlocksImported_notOnesRegisteredLocallyWhileTheFetchRan() {
        assertThat(remote.ready(1, context, "t", false)).as("a fetch started").isFalse();
        // Another sequence computes the first two blocks meanwhile.
        cache.importBlocks(chain.subList(0, 2));
        long imported = cache.importedBlocks();

        await().atMost(Duration.ofSeconds(30)).until(() -> remote.ready(1, context, "t", false));

        assertThat(cache.presentBlocks(chain.stream().map(BlockContents::hash).toList())).isEqualTo(4);
        assertThat(cache.importedBlocks() - imported).isEqualTo(2);
        assertThat(remote.fetchedBlocks()).isEqualTo(2);
        assertThat(remote.fetchedTokens()).isEqualTo(2L * SHAPE.blockTokens());
    }

    @Test
    void aResume_whoseBlocksWereAllRegisteredLocallyMeanwhile_isNoRestore() {
        remote.swapOut(2, context, "t");
        assertThat(remote.ready(2, context, "t", true)).as("a restore started").isFalse();
        cache.importBlocks(chain);

        await().atMost(Duration.ofSeconds(30)).until(() -> remote.ready(2, context, "t", true));

        assertThat(remote.fetchedBlocks()).isZero();
        assertThat(remote.restores()).isZero();
        assertThat(remote.restoredBlocks()).isZero();
    }
}
