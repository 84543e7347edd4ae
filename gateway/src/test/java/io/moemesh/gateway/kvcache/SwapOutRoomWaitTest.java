package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A swapped-out sequence's resume while the pool lacks the room for its whole context (a 16-block pool, 15 of them
 * held by another sequence; its context is 5 blocks), against the in-memory kvcache.v1 service, with a test clock.
 * Waiting keeps its place, and nobody is admitted past it; before, it waited whatever its swap-out had written, and
 * for as long as the running sequences ran (bounded only by their max_tokens: minutes), every later request behind
 * it, even a one-block one.
 */
class SwapOutRoomWaitTest {
    private static final KvPayload SHAPE = WriteBackTest.LAYOUT;
    private static final Duration FETCH_TIMEOUT = Duration.ofSeconds(2);
    private final FakeKvCacheService kv = new FakeKvCacheService(SHAPE.blockTokens());
    private final KvCacheClient client = WriteBackTest.clientOf(kv);
    private final PrefixCachingKvCache cache = new PrefixCachingKvCache(SHAPE.layers(),
            SHAPE.kvHeads() * SHAPE.headDim(), SHAPE.blockTokens(), 16, WriteBackTest.MODEL, true);
    private final AtomicLong clock = new AtomicLong();
    private final List<BlockContents> chain = WriteBackTest.chain(4, 70);
    /** The swapped-out sequence's context: its 4 full blocks and one more token. */
    private final int[] context = IntStream.concat(chain.stream().flatMapToInt(b -> IntStream.of(b.tokens())),
            IntStream.of(1)).toArray();
    private final CompletableFuture<Void> hold = new CompletableFuture<>();
    private WriteBack writeBack;
    private RemotePrefixes remote;

    private void start(int priorityBlocks) {
        writeBack = new WriteBack(client, 64, priorityBlocks, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        remote = new RemotePrefixes(cache, client, writeBack, new TransferRates(), FETCH_TIMEOUT, 1,
                RemotePrefixes.Mode.SWAP, RemotePrefixes.fetchThreads(1), clock::get);
    }

    /** {@link #start} with the real clock. */
    private void startTimedByTheSystem(int priorityBlocks) {
        writeBack = new WriteBack(client, 64, priorityBlocks, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        remote = new RemotePrefixes(cache, client, writeBack, new TransferRates(), FETCH_TIMEOUT, 1,
                RemotePrefixes.Mode.SWAP, RemotePrefixes.fetchThreads(1));
    }

    @AfterEach
    void stop() {
        kv.putHold = null;
        hold.complete(null);
        remote.close();
        writeBack.close(Duration.ZERO);
        client.close();
        kv.close();
    }

    /** Sequence 7 holds its 4 blocks and is swapped out; then sequence 8 takes 15 of the pool's 16 blocks. */
    private void swappedOutIntoAFullPool() {
        cache.importBlocks(chain);
        assertThat(cache.acquirePrefix(7, context, "t")).isEqualTo(4 * SHAPE.blockTokens());
        remote.swapOut(7, context, "t");
        cache.release(7);
        List<BlockContents> other = WriteBackTest.chain(15, 71);
        cache.importBlocks(other);
        int[] running = IntStream.concat(other.stream().flatMapToInt(b -> IntStream.of(b.tokens())),
                IntStream.of(1)).toArray();
        assertThat(cache.acquirePrefix(8, running, "t")).isEqualTo(15 * SHAPE.blockTokens());
        assertThat(cache.freeBlocks() + cache.cachedBlocks()).as("room for 1 of its 5 blocks").isOne();
    }

    @Test
    void aSwapOutThatQueuedNothing_ofBlocksTheServiceIsNotKnownToHold_holdsNoPlace() throws Exception {
        startTimedByTheSystem(1);
        // The priority budget taken (here by a write held in its Put): the swap-out copies nothing.
        kv.putHold = hold;
        List<BlockContents> busy = WriteBackTest.chain(1, 72);
        writeBack.writeFirst(busy, List.of(busy.getFirst().hash()));
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.heldPuts.get() == 1);
        assertThat(writeBack.priorityRoom()).isZero();

        swappedOutIntoAFullPool();

        assertThat(remote.ready(7, context, "t", true)).as("nothing to restore: it resumes, recomputing").isTrue();
        assertThat(remote.holdsPlace(7)).isFalse();
        assertThat(remote.swapOuts()).isOne();
    }

    @Test
    void aSwappedOutSequenceWithBlocksToRestore_holdsItsPlaceForAtMostTheFetchTimeout_thenResumesRecomputing() {
        start(64);
        swappedOutIntoAFullPool();
        List<BlockHash> hashes = chain.stream().map(BlockContents::hash).toList();
        await().atMost(Duration.ofSeconds(30)).until(() -> hashes.stream().allMatch(writeBack.memory()::isStored));

        assertThat(remote.ready(7, context, "t", true)).isFalse();
        assertThat(remote.holdsPlace(7)).as("waits for room in its place").isTrue();
        clock.addAndGet(FETCH_TIMEOUT.toNanos() - 1);
        assertThat(remote.ready(7, context, "t", true)).isFalse();
        assertThat(remote.holdsPlace(7)).isTrue();

        clock.addAndGet(1);
        assertThat(remote.ready(7, context, "t", true)).as("waited long enough: it resumes, recomputing").isTrue();
        assertThat(remote.holdsPlace(7)).isFalse();
        assertThat(remote.fetches()).as("no restore into a pool without room").isZero();
    }

    @Test
    void aSwapOutWhoseBlocksAreStored_restoresThemOnceThereIsRoom_withinTheWait() throws Exception {
        start(64);
        swappedOutIntoAFullPool();
        assertThat(remote.ready(7, context, "t", true)).isFalse();
        clock.addAndGet(FETCH_TIMEOUT.toNanos() / 2);

        cache.release(8); // the running sequence ended: room

        assertThat(remote.ready(7, context, "t", true)).as("its restore started").isFalse();
        await().atMost(Duration.ofSeconds(30)).until(() -> remote.ready(7, context, "t", true));
        assertThat(remote.restores()).isOne();
        assertThat(cache.presentBlocks(cache.prefixChain(context, "t", 4))).isEqualTo(4);
    }
}
