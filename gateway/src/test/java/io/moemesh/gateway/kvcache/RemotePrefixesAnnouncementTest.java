package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.PrefixCachingKvCache;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * How {@link RemotePrefixes} announces requests that fetch nothing, against the recording in-memory kvcache.v1
 * service, the test thread acting as the engine thread, over one fetch thread the test can keep busy: an announcement
 * never waits for a fetch thread (a slow service holds those for up to the fetch timeout), at most
 * {@link ChainLookups#MAX_ANNOUNCEMENTS_IN_FLIGHT} are unanswered (one more is dropped and counted, once per
 * sequence however often it is tried again), and a sequence
 * counts as announced only once something carrying its chain went out.
 */
class RemotePrefixesAnnouncementTest {
    private static final KvPayload SHAPE = WriteBackTest.LAYOUT;
    private final FakeKvCacheService kv = new FakeKvCacheService(SHAPE.blockTokens());
    private final KvCacheClient client = WriteBackTest.clientOf(kv);
    private final PrefixCachingKvCache cache = new PrefixCachingKvCache(SHAPE.layers(),
            SHAPE.kvHeads() * SHAPE.headDim(), SHAPE.blockTokens(), 16, WriteBackTest.MODEL, true);
    private final WriteBack writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000,
            Duration.ofSeconds(5));
    private final ExecutorService fetchThread = RemotePrefixes.fetchThreads(1);
    /** Released at the end: the fetch thread is free again. */
    private final CountDownLatch busy = new CountDownLatch(1);
    private RemotePrefixes remote;
    private final List<BlockContents> chain = WriteBackTest.chain(6, 40);

    private RemotePrefixes remote(Duration fetchTimeout) {
        remote = new RemotePrefixes(cache, client, writeBack, new TransferRates(), fetchTimeout, 1,
                RemotePrefixes.Mode.SWAP, fetchThread);
        return remote;
    }

    @AfterEach
    void stop() {
        busy.countDown();
        CompletableFuture<Void> hold = kv.lookupHold;
        if (hold != null) {
            hold.complete(null);
        }
        if (remote != null) {
            remote.close();
        }
        writeBack.close(Duration.ZERO);
        client.close();
        kv.close();
    }

    /** Keeps the only fetch thread busy until the test ends (a fetch stuck on a slow service). */
    private void occupyTheFetchThread() {
        fetchThread.execute(() -> {
            try {
                busy.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
    }

    private static int[] context(List<BlockContents> blocks) {
        return IntStream.concat(blocks.stream().flatMapToInt(b -> IntStream.of(b.tokens())), IntStream.of(1))
                .toArray();
    }

    private static List<ByteString> wire(List<BlockContents> blocks) {
        return blocks.stream().map(b -> ByteString.copyFrom(b.hash().bytes())).toList();
    }

    @Test
    void anAnnouncement_isSentWhileEveryFetchThreadIsBusy_notQueuedBehindTheFetches() {
        RemotePrefixes r = remote(Duration.ofSeconds(20));
        cache.importBlocks(chain);
        occupyTheFetchThread();

        assertThat(r.ready(1, context(chain), "t", false)).isTrue();

        await().atMost(Duration.ofSeconds(20)).until(() -> kv.lookups.get() >= 1);
        assertThat(kv.lookupRequests.getFirst().getHeldBlocks()).isEqualTo(chain.size());
        assertThat(r.announcements()).isEqualTo(1);
    }

    @Test
    void announcements_atMostTheBoundUnanswered_oneMoreIsDroppedAndCountedOnce_andSentOnceAnswersFreedRoom() {
        RemotePrefixes r = remote(Duration.ofSeconds(20));
        cache.importBlocks(chain);
        kv.lookupHold = new CompletableFuture<>();
        int bound = ChainLookups.MAX_ANNOUNCEMENTS_IN_FLIGHT;

        for (long seq = 0; seq < bound + 3; seq++) {
            assertThat(r.ready(seq, context(chain), "t", false)).isTrue();
        }

        assertThat(r.announcements()).isEqualTo(bound);
        assertThat(r.droppedAnnouncements()).isEqualTo(3);
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.lookups.get() >= bound);
        assertThat(kv.lookups.get()).isEqualTo(bound);
        // Not admitted yet, a dropped sequence is tried again at every step: still one request dropped.
        for (int step = 0; step < 5; step++) {
            assertThat(r.ready(bound + 1, context(chain), "t", false)).isTrue();
        }
        assertThat(r.droppedAnnouncements()).as("counted once per sequence").isEqualTo(3);

        kv.lookupHold.complete(null);
        // A dropped sequence was not marked announced: asked about again once the answers freed room, it is sent.
        long dropped = bound + 2;
        await().atMost(Duration.ofSeconds(30)).until(() -> {
            r.ready(dropped, context(chain), "t", false);
            return r.announcements() == bound + 1;
        });
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.lookups.get() == bound + 1);
    }

    @Test
    void aPromptShorterThanOneBlock_isNotMarkedAnnounced_soItsFirstLookupOnceItHasBlocks_isNoRepeat() {
        RemotePrefixes r = remote(Duration.ofSeconds(20));
        assertThat(r.ready(7, new int[] {5, 6, 7}, "t", false)).as("no full block: nothing to tell").isTrue();
        assertThat(r.announcements()).isZero();
        for (BlockContents b : chain.subList(0, 2)) {
            kv.blocks.put(ByteString.copyFrom(b.hash().bytes()), SHAPE.encode(b.keys(), b.values()));
        }

        // Preempted, it resumes with the blocks it generated.
        assertThat(r.ready(7, context(chain.subList(0, 2)), "t", true)).as("a fetch started").isFalse();
        await().atMost(Duration.ofSeconds(30)).until(() -> r.ready(7, context(chain.subList(0, 2)), "t", true));

        assertThat(kv.lookupRequests).hasSize(1);
        assertThat(kv.lookupRequests.getFirst().getRepeat()).as("the service never saw it").isFalse();
        assertThat(r.fetchedBlocks()).isEqualTo(2);
    }

    @Test
    void aFetchThatTimedOutBeforeItsLookupWentOut_isAnnouncedWhenItEnds_andItsResumeIsARepeat() throws Exception {
        RemotePrefixes r = remote(Duration.ofSeconds(1));
        for (BlockContents b : chain) {
            kv.blocks.put(ByteString.copyFrom(b.hash().bytes()), SHAPE.encode(b.keys(), b.values()));
        }
        occupyTheFetchThread();

        assertThat(r.ready(8, context(chain), "t", false)).as("a fetch started, queued").isFalse();
        await().atMost(Duration.ofSeconds(30)).until(() -> r.ready(8, context(chain), "t", false));

        assertThat(r.announcements()).as("told when its fetch ended").isEqualTo(1);
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.lookups.get() >= 1);
        busy.countDown();
        fetchThread.submit(() -> { }).get(); // the queued fetch ran (or was skipped) before this
        assertThat(kv.lookupRequests).as("the timed-out fetch sent no Lookup after all").hasSize(1);
        LookupRequest told = kv.lookupRequests.getFirst();
        assertThat(told.getBlockHashesList()).isEqualTo(wire(chain));
        assertThat(told.getHeldBlocks()).isEqualTo(chain.size());
        assertThat(told.getRepeat()).isFalse();

        // Preempted before it ran a step: its resume's Lookup is a repeat (the policy saw it once).
        assertThat(r.ready(8, context(chain), "t", true)).isFalse();
        await().atMost(Duration.ofSeconds(30)).until(() -> r.ready(8, context(chain), "t", true));
        assertThat(kv.lookupRequests).hasSize(2);
        assertThat(kv.lookupRequests.get(1).getRepeat()).isTrue();
        assertThat(kv.lookupRequests.get(1).getHeldBlocks()).isZero();
    }
}
