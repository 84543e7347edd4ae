package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A swap-out and its restore against the real kvcache-service's gRPC service and tiers (in this JVM, mutual TLS)
 * whose admission policy declines the last block of the chain the sequence's prompt announced, as the default
 * conversation policy does once it has learned that last blocks are rarely reused. The swap-out's Puts say {@code
 * swap_out}, so the policy is not asked; before, that block was declined, the blocks the sequence generated after it
 * were stored but unreachable (a restore is the leading run), and the resume recomputed them all after their writes
 * were paid for, with no failure counted, so {@code auto} kept choosing swap.
 */
class SwapOutAdmissionTest {
    private static final KvPayload SHAPE = WriteBackTest.LAYOUT;
    @TempDir
    Path ssdDir;
    /** The prompt announced blocks 0..1; the sequence generated blocks 2..3 before it was preempted. */
    private final List<BlockContents> chain = WriteBackTest.chain(4, 50);
    private final PrefixCachingKvCache cache = new PrefixCachingKvCache(SHAPE.layers(),
            SHAPE.kvHeads() * SHAPE.headDim(), SHAPE.blockTokens(), 16, WriteBackTest.MODEL, true);
    private LoopbackKvCache kv;
    private WriteBack writeBack;
    private RemotePrefixes remote;

    @BeforeEach
    void start() {
        BlockKey announcedLast = BlockKey.of(chain.get(1).hash().bytes());
        kv = new LoopbackKvCache(ssdDir, "declining", (key, hint) -> !key.equals(announcedLast), List.of());
        writeBack = kv.writeBack();
        remote = new RemotePrefixes(cache, kv.client, writeBack, new TransferRates(), Duration.ofSeconds(20), 1,
                RemotePrefixes.Mode.SWAP, RemotePrefixes.fetchThreads(1));
    }

    @AfterEach
    void stop() {
        remote.close();
        writeBack.close(Duration.ZERO);
        kv.close();
    }

    @Test
    void swapOut_isNotDeclinedByTheAdmissionPolicy_soTheResumeRestoresTheWholeChain() {
        int[] context = IntStream.concat(chain.stream().flatMapToInt(b -> IntStream.of(b.tokens())),
                IntStream.of(1)).toArray();
        cache.importBlocks(chain);
        assertThat(cache.acquirePrefix(7, context, "t")).as("the sequence holds its 4 blocks")
                .isEqualTo(4 * SHAPE.blockTokens());
        remote.swapOut(7, context, "t");
        cache.release(7);
        cache.importBlocks(WriteBackTest.chain(16, 51)); // the local cache lost them meanwhile

        assertThat(remote.ready(7, context, "t", true)).as("a restore started").isFalse();
        await().atMost(Duration.ofSeconds(30)).until(() -> remote.ready(7, context, "t", true));

        assertThat(remote.restoredBlocks()).isEqualTo(4);
        assertThat(remote.fetchFailures()).isZero();
        assertThat(kv.store.stats().declined()).as("the policy was not asked").isZero();
    }
}
