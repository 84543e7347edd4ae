package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * What {@link RemotePrefixes}' fetches learn from the service, against the in-memory kvcache.v1 service, the test
 * thread acting as the engine thread: a block the write-back remembers as stored but the service no longer has is
 * forgotten (sent again when next offered), bytes other than the ones this gateway stored are refused on every fetch
 * (the service keeps that copy), blocks fetched are not written back to it again, a bad block after good ones is
 * counted bad, fetches that fail or time out pull {@code auto} to recompute, and a sequence preempted for recompute
 * fetches what the local cache lost.
 */
class RemotePrefixesEvidenceTest {
    private static final KvPayload SHAPE = WriteBackTest.LAYOUT;
    private static final Duration FETCH_TIMEOUT = Duration.ofMillis(300);
    private final FakeKvCacheService kv = new FakeKvCacheService(SHAPE.blockTokens());
    private final KvCacheClient client = new KvCacheClient(NettyChannelBuilder.forTarget(kv.endpoint(),
            TestCertificates.credentials("gateway").channel()).build(), kv.endpoint(), WriteBackTest.MODEL, SHAPE, null);
    private final PrefixCachingKvCache cache = new PrefixCachingKvCache(SHAPE.layers(),
            SHAPE.kvHeads() * SHAPE.headDim(), SHAPE.blockTokens(), 16, WriteBackTest.MODEL, true);
    private final WriteBack writeBack = new WriteBack(client, 64, 16, Duration.ofSeconds(10), 1000,
            Duration.ofSeconds(5));
    private final TransferRates rates = new TransferRates();
    /** Fetches ended and measured: the wake-up runs right after a fetch's sample is taken ({@code measured}). */
    private final AtomicInteger measuredFetches = new AtomicInteger();
    private RemotePrefixes remote;

    private void start(RemotePrefixes.Mode mode, Duration fetchTimeout) {
        remote = new RemotePrefixes(cache, client, writeBack, rates, fetchTimeout, 1, mode,
                RemotePrefixes.fetchThreads(1));
        remote.setWakeUp(measuredFetches::incrementAndGet);
    }

    @AfterEach
    void stop() {
        remote.close();
        writeBack.close(Duration.ZERO);
        client.close();
        kv.close();
    }

    private static int[] context(List<BlockContents> chain) {
        return IntStream.concat(chain.stream().flatMapToInt(b -> IntStream.of(b.tokens())), IntStream.of(1)).toArray();
    }

    private static List<BlockHash> hashes(List<BlockContents> chain) {
        return chain.stream().map(BlockContents::hash).toList();
    }

    private void inServiceOnly(List<BlockContents> chain) {
        for (BlockContents b : chain) {
            kv.blocks.put(key(b), SHAPE.encode(b.keys(), b.values()));
        }
    }

    private static ByteString key(BlockContents b) {
        return ByteString.copyFrom(b.hash().bytes());
    }

    /**
     * Admits (or resumes) {@code seq} as the scheduler does: a fetch starts, then ends; returns once its sample of
     * the restore rate is taken too (a callback of the fetch, which may run just after ready saw it done).
     */
    private void admit(long seq, int[] context, boolean again) {
        int measured = measuredFetches.get();
        assertThat(remote.ready(seq, context, "t", again)).as("a fetch started").isFalse();
        await().atMost(Duration.ofSeconds(30)).until(() -> remote.ready(seq, context, "t", again));
        await().atMost(Duration.ofSeconds(30)).until(() -> measuredFetches.get() == measured + 1);
    }

    @Test
    void aLookupThatStopsAtABlockRememberedStored_makesTheWriteBackSendItAgain() throws Exception {
        start(RemotePrefixes.Mode.SWAP, Duration.ofSeconds(20));
        List<BlockContents> chain = WriteBackTest.chain(4, 20);
        writeBack.writeFirst(chain, hashes(chain)).get(30, TimeUnit.SECONDS);
        assertThat(writeBack.wants(chain.getFirst().hash())).isFalse();
        kv.blocks.clear(); // the service lost them

        remote.ready(1, context(chain), "t", false);
        await().atMost(Duration.ofSeconds(30)).until(() -> remote.ready(1, context(chain), "t", false));

        assertThat(writeBack.wants(chain.getFirst().hash())).as("known missing: wanted again").isTrue();
    }

    @Test
    void aBlockHoldingOtherBytesThanThisGatewayStored_isRefusedOnEveryFetch_andNothingImported() throws Exception {
        start(RemotePrefixes.Mode.SWAP, Duration.ofSeconds(20));
        List<BlockContents> chain = WriteBackTest.chain(4, 21);
        writeBack.writeFirst(chain, hashes(chain)).get(30, TimeUnit.SECONDS);
        long sum = writeBack.memory().checksum(chain.getFirst().hash());
        // Block 0's copy in the service holds other bytes (corrupted, or another gateway's floats for the same
        // tokens after the service lost ours): the service keeps it, whatever this gateway sends.
        BlockContents other = WriteBackTest.chain(1, 22).getFirst();
        kv.blocks.put(key(chain.getFirst()), SHAPE.encode(other.keys(), other.values()));

        admit(1, context(chain), false);
        assertThat(remote.badBlocks()).isEqualTo(1);
        assertThat(remote.fetchedBlocks()).isZero();

        admit(2, context(chain), false);
        assertThat(remote.badBlocks()).as("refused again").isEqualTo(2);
        assertThat(remote.fetchedBlocks()).as("nothing imported: those tokens are recomputed").isZero();
        assertThat(writeBack.memory().checksum(chain.getFirst().hash())).as("its checksum kept").isEqualTo(sum);
        assertThat(writeBack.wants(chain.getFirst().hash())).as("not sent again").isFalse();
    }

    @Test
    void blocksFetchedFromTheService_areNotWrittenBackWhenTheCacheLetsGoOfThem() {
        start(RemotePrefixes.Mode.SWAP, Duration.ofSeconds(20));
        cache.setBlockSink(writeBack);
        List<BlockContents> chain = WriteBackTest.chain(4, 27);
        inServiceOnly(chain);
        admit(1, context(chain), false);
        assertThat(remote.fetchedBlocks()).isEqualTo(4);

        assertThat(cache.acquirePrefix(1, context(chain), "t")).isEqualTo(4 * SHAPE.blockTokens());
        cache.release(1); // its blocks become cached: offered to the write-back
        cache.importBlocks(WriteBackTest.chain(16, 28)); // and evicted: offered again
        writeBack.close(Duration.ofSeconds(30)); // writes whatever was queued

        assertThat(writeBack.writtenBlocks()).as("the service holds them already").isZero();
        assertThat(writeBack.droppedBlocks()).isZero();
    }

    @Test
    void aBadBlockAfterGoodOnes_endsTheRunThere_andIsCountedBad() {
        start(RemotePrefixes.Mode.SWAP, Duration.ofSeconds(20));
        List<BlockContents> chain = WriteBackTest.chain(4, 23);
        inServiceOnly(chain);
        kv.shortBlockAt = 2;

        admit(1, context(chain), false);

        assertThat(remote.fetchedBlocks()).isEqualTo(2);
        assertThat(remote.badBlocks()).isEqualTo(1);
        assertThat(remote.fetchFailures()).isEqualTo(1);
    }

    @Test
    void aSequencePreemptedForRecompute_fetchesTheBlocksTheLocalCacheLost_fromTheService() {
        start(RemotePrefixes.Mode.RECOMPUTE, Duration.ofSeconds(20));
        List<BlockContents> chain = WriteBackTest.chain(4, 24);
        inServiceOnly(chain);

        admit(1, context(chain), true);

        assertThat(remote.fetchedBlocks()).isEqualTo(4);
        assertThat(remote.restores()).as("a restore is a swapped-out sequence's").isZero();
    }

    @Test
    void auto_turnsToRecompute_onceFetchesTakeLongerThanTheFetchTimeout() {
        start(RemotePrefixes.Mode.AUTO, FETCH_TIMEOUT);
        List<BlockContents> fast = WriteBackTest.chain(4, 25);
        List<BlockContents> slow = WriteBackTest.chain(4, 26);
        inServiceOnly(fast);
        inServiceOnly(slow);
        admit(1, context(fast), false);
        double measured = rates.restoreBytesPerSecond();
        assertThat(measured).isPositive();
        // Prefill at half the measured restore rate's worth of tokens: restoring is predicted faster.
        long bytesPerToken = SHAPE.bytes() / SHAPE.blockTokens();
        rates.prefilled((int) Math.max(1, measured / 2 / bytesPerToken), TimeUnit.SECONDS.toNanos(1));
        assertThat(remote.choose(100, context(slow), "t")).isEqualTo(PreemptionPolicy.Choice.SWAP_OUT);

        kv.delay = FETCH_TIMEOUT.multipliedBy(3);
        int failed = 0;
        while (remote.choose(100, context(slow), "t") == PreemptionPolicy.Choice.SWAP_OUT && failed < 10) {
            admit(10 + failed, context(slow), false);
            failed++;
        }

        assertThat(remote.choose(100, context(slow), "t")).as("after %d fetches past the timeout", failed)
                .isEqualTo(PreemptionPolicy.Choice.RECOMPUTE);
        assertThat(remote.fetchFailures()).isEqualTo(failed);
    }
}
