package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.PrefixCachingKvCache;
import io.moemesh.proto.kvcache.v1.LookupRequest;
import java.time.Duration;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What {@link RemotePrefixes} tells the service about each request, against the recording in-memory kvcache.v1
 * service, the test thread acting as the engine thread. The service's policy matches a request's chain from block 0
 * (which conversation it continues) and keys blocks by their chain positions, so every Lookup carries the whole chain
 * and says how many leading blocks the gateway holds; before, a next turn whose history was still local asked about
 * its new blocks alone (a first turn to the policy, its blocks heads), and one with nothing to fetch was never seen.
 */
class RemotePrefixesLookupTest {
    private static final KvPayload SHAPE = WriteBackTest.LAYOUT;
    private final FakeKvCacheService kv = new FakeKvCacheService(SHAPE.blockTokens());
    private final KvCacheClient client = WriteBackTest.clientOf(kv);
    private final PrefixCachingKvCache cache = new PrefixCachingKvCache(SHAPE.layers(),
            SHAPE.kvHeads() * SHAPE.headDim(), SHAPE.blockTokens(), 16, WriteBackTest.MODEL, true);
    private WriteBack writeBack;
    private RemotePrefixes remote;
    /** A conversation: turn 1 is blocks 0..3, turn 2 blocks 0..5. */
    private final List<BlockContents> chain = WriteBackTest.chain(6, 40);

    @BeforeEach
    void start() {
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

    /** The tokens of {@code blocks} and one more (the block of the last token is always computed). */
    private static int[] context(List<BlockContents> blocks) {
        return IntStream.concat(blocks.stream().flatMapToInt(b -> IntStream.of(b.tokens())), IntStream.of(1))
                .toArray();
    }

    private static List<ByteString> wire(List<BlockContents> blocks) {
        return blocks.stream().map(b -> ByteString.copyFrom(b.hash().bytes())).toList();
    }

    private void inServiceOnly(List<BlockContents> blocks) {
        for (BlockContents b : blocks) {
            kv.blocks.put(ByteString.copyFrom(b.hash().bytes()), SHAPE.encode(b.keys(), b.values()));
        }
    }

    /** Admits {@code seq} as the scheduler does when a fetch starts: not ready, then ready once it ended. */
    private void admitWithFetch(long seq, int[] context, boolean again) {
        assertThat(remote.ready(seq, context, "t", again)).as("a fetch started").isFalse();
        await().atMost(Duration.ofSeconds(30)).until(() -> remote.ready(seq, context, "t", again));
    }

    @Test
    void aNextTurnWhoseHistoryIsLocal_looksUpItsWholeChainFromBlock0_sayingWhichBlocksAreHeld_andFetchesOnlyTheRest() {
        cache.importBlocks(chain.subList(0, 4)); // turn 1's blocks, still in the local cache
        inServiceOnly(chain.subList(4, 6));

        admitWithFetch(2, context(chain), false);

        assertThat(kv.lookupRequests).hasSize(1);
        LookupRequest req = kv.lookupRequests.getFirst();
        assertThat(req.getBlockHashesList()).as("the whole chain, block 0 first").isEqualTo(wire(chain));
        assertThat(req.getHeldBlocks()).isEqualTo(4);
        assertThat(req.getRepeat()).isFalse();
        assertThat(remote.fetchedBlocks()).as("only the blocks the gateway lacked").isEqualTo(2);
        assertThat(kv.gets.get()).isEqualTo(1);
    }

    @Test
    void aRequestWithNothingToFetch_isStillAnnounced_onceAndWithEveryBlockHeld() {
        cache.importBlocks(chain);

        assertThat(remote.ready(3, context(chain), "t", false)).as("admitted at once").isTrue();
        assertThat(remote.ready(3, context(chain), "t", false)).as("asked again: not admitted that step").isTrue();

        // The announcements went out on this (the engine) thread: what was sent is settled, the arrival awaited.
        assertThat(remote.announcements()).as("sent once").isEqualTo(1);
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.lookups.get() >= 1);
        assertThat(kv.lookups.get()).as("nothing else was sent").isEqualTo(1);
        LookupRequest req = kv.lookupRequests.getFirst();
        assertThat(req.getBlockHashesList()).isEqualTo(wire(chain));
        assertThat(req.getHeldBlocks()).as("asks about nothing").isEqualTo(6);
        assertThat(remote.fetches()).isZero();
        assertThat(kv.gets.get()).isZero();
    }

    @Test
    void aResumeOfAnAnnouncedSequence_whoseChainGrew_saysItIsARepeat() {
        inServiceOnly(chain);
        admitWithFetch(4, context(chain.subList(0, 4)), false);
        // Preempted for recompute; the local cache lost its blocks meanwhile; it resumes with its generated blocks.
        cache.importBlocks(WriteBackTest.chain(16, 41));

        admitWithFetch(4, context(chain), true);

        assertThat(kv.lookupRequests).hasSize(2);
        assertThat(kv.lookupRequests.get(0).getRepeat()).isFalse();
        assertThat(kv.lookupRequests.get(1).getRepeat()).as("not a next turn of itself").isTrue();
        assertThat(kv.lookupRequests.get(1).getBlockHashesList()).isEqualTo(wire(chain));
    }

    @Test
    void aFetchWithLocalReads_locatesItsMissingBlocks_fromTheirTrueChainPosition() {
        KvCacheClient reading = new KvCacheClient(NettyChannelBuilder.forTarget(kv.endpoint(),
                TestCertificates.credentials("gateway").channel()).build(),
                kv.endpoint(), WriteBackTest.MODEL, SHAPE, null, true);
        RemotePrefixes locating = new RemotePrefixes(cache, reading, writeBack, new TransferRates(),
                Duration.ofSeconds(20), 1, RemotePrefixes.Mode.SWAP, RemotePrefixes.fetchThreads(1));
        try {
            cache.importBlocks(chain.subList(0, 4));
            inServiceOnly(chain.subList(4, 6));

            assertThat(locating.ready(9, context(chain), "t", false)).isFalse();
            await().atMost(Duration.ofSeconds(30)).until(() -> locating.ready(9, context(chain), "t", false));

            assertThat(kv.locateRequests).hasSize(1);
            assertThat(kv.locateRequests.getFirst().getBlockHashesList()).as("the blocks after the local ones")
                    .isEqualTo(wire(chain.subList(4, 6)));
            assertThat(kv.locateRequests.getFirst().getFirstBlock()).as("block 4 of the chain, not its block 0")
                    .isEqualTo(4);
            assertThat(locating.fetchedBlocks()).as("Got (in memory)").isEqualTo(2);
        } finally {
            locating.close();
            reading.close();
        }
    }

    @Test
    void aServiceThatPredatesHeldBlocks_whoseRunFromBlock0CoversTheHeldOnes_isAskedOnce_andAnnouncedNothingAfter() {
        kv.legacyLookup = true;
        cache.importBlocks(chain.subList(0, 4));
        inServiceOnly(chain); // its run from block 0 goes on past the 4 held blocks

        admitWithFetch(5, context(chain), false);

        assertThat(remote.fetchedBlocks()).isEqualTo(2);
        assertThat(kv.lookupRequests).as("its answer from block 0 used: no second Lookup").hasSize(1);
        assertThat(kv.lookupRequests.getFirst().getHeldBlocks()).isEqualTo(4);

        // Everything local now: the older service is not told (it would take the chain as asked about).
        assertThat(remote.ready(6, context(chain), "t", false)).isTrue();
        assertThat(remote.announcements()).isZero();
        assertThat(remote.droppedAnnouncements()).isZero();
        List<BlockContents> other = WriteBackTest.chain(6, 42);
        cache.importBlocks(other.subList(0, 5));
        inServiceOnly(other.subList(5, 6));
        admitWithFetch(7, context(other), false);
        assertThat(kv.lookupRequests).hasSize(2);
        assertThat(kv.lookupRequests.get(1).getBlockHashesList()).as("the rest alone, as before held_blocks")
                .isEqualTo(wire(other.subList(5, 6)));
    }

    @Test
    void aServiceThatPredatesHeldBlocks_isAskedAboutTheRestAlone_fromThenOn_andFetchesStillWork() {
        kv.legacyLookup = true;
        cache.importBlocks(chain.subList(0, 4));
        inServiceOnly(chain.subList(4, 6));

        admitWithFetch(5, context(chain), false);

        assertThat(remote.fetchedBlocks()).isEqualTo(2);
        assertThat(kv.lookupRequests).hasSize(2);
        assertThat(kv.lookupRequests.get(1).getBlockHashesList()).as("asked again, the rest alone")
                .isEqualTo(wire(chain.subList(4, 6)));

        List<BlockContents> other = WriteBackTest.chain(6, 42);
        cache.importBlocks(other.subList(0, 5));
        inServiceOnly(other.subList(5, 6));
        admitWithFetch(6, context(other), false);
        assertThat(remote.fetchedBlocks()).isEqualTo(3);
        assertThat(kv.lookupRequests).hasSize(3);
        assertThat(kv.lookupRequests.get(2).getBlockHashesList()).as("as before held_blocks")
                .isEqualTo(wire(other.subList(5, 6)));
        assertThat(kv.lookupRequests.get(2).getHeldBlocks()).isZero();
    }
}
