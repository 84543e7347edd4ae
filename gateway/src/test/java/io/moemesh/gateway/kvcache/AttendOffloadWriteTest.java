package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.BlockOffload.Outcome;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The Attend offload's writes and Pins against the in-memory kvcache.v1 service: an offload larger than the
 * write-back's ordinary queue stores and pins all its blocks (before, the queue's bound dropped its tail and the
 * offload failed, the sequence local for good), blocks the write-back remembers as stored but the service lost
 * are sent again and pinned (before, the Pin found them missing and every later offload of them failed too), or,
 * sent by hash alone, make the offload say {@code AGAIN} (the cache copies them then), and an offload's copies count
 * against its budget until it is over.
 */
class AttendOffloadWriteTest {
    private static final KvPayload LAYOUT = WriteBackTest.LAYOUT;
    private final FakeKvCacheService kv = new FakeKvCacheService(LAYOUT.blockTokens());
    private final KvCacheClient client = WriteBackTest.clientOf(kv);
    private WriteBack writeBack;
    private AttendOffload offload;

    private void start(int queueBlocks) {
        start(queueBlocks, 64);
    }

    private void start(int queueBlocks, int priorityBlocks) {
        writeBack = new WriteBack(client, queueBlocks, priorityBlocks, Duration.ofSeconds(10), 1000,
                Duration.ofSeconds(5));
        offload = new AttendOffload(client, writeBack, 1, 0, Duration.ofSeconds(10), Duration.ofSeconds(30), 64);
    }

    @AfterEach
    void stop() {
        offload.close();
        writeBack.close(Duration.ZERO);
        client.close();
        kv.close();
    }

    private boolean pinnedInService(BlockContents b) {
        return kv.pins.getOrDefault(ByteString.copyFrom(b.hash().bytes()), 0) > 0;
    }

    @Test
    void anOffloadOfMoreBlocksThanTheWriteBackQueue_storesAndPinsThemAll() throws Exception {
        start(4);
        // The writer held in a Put of an ordinary block until released: the offload's six blocks all wait queued.
        CompletableFuture<Void> hold = new CompletableFuture<>();
        kv.putHold = hold;
        writeBack.accept(WriteBackTest.chain(1, 80).getFirst());
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.heldPuts.get() == 1);
        List<BlockContents> six = WriteBackTest.chain(6, 81);

        CompletableFuture<Outcome> offloaded = offload.offload(1, six);
        assertThat(writeBack.queuedBlocks()).as("all six queued behind the held Put").isEqualTo(6);
        kv.putHold = null;
        hold.complete(null);
        assertThat(offloaded.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);

        assertThat(six).allMatch(this::pinnedInService);
        assertThat(offload.offloadedBlocks()).isEqualTo(6);
        assertThat(offload.offloadFailures()).isZero();
        assertThat(writeBack.droppedBlocks()).isZero();
    }

    @Test
    void anOffloadOfBlocksTheServiceLostSinceTheyWereStored_sendsThemAgain_andPinsThem() throws Exception {
        start(64);
        List<BlockContents> three = WriteBackTest.chain(3, 82);
        List<BlockHash> hashes = three.stream().map(BlockContents::hash).toList();
        writeBack.writeFirst(three, hashes).get(30, TimeUnit.SECONDS);
        assertThat(kv.stored.get()).isEqualTo(3);
        // The service lost them (evicted, or a kill -9 took its DRAM); the write-back still remembers them stored.
        kv.blocks.clear();

        assertThat(offload.offload(2, three).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);

        assertThat(kv.stored.get()).as("sent again").isEqualTo(6);
        assertThat(three).allMatch(this::pinnedInService);
        assertThat(offload.offloadFailures()).isZero();
        offload.released(2);
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.pins.isEmpty());
    }

    @Test
    void blocksSentByHashAlone_thatTheServiceLost_makeTheOffloadSayAgain_andAreCopiedTheNextTime() throws Exception {
        start(64);
        List<BlockContents> three = WriteBackTest.chain(3, 84);
        List<BlockHash> hashes = three.stream().map(BlockContents::hash).toList();
        writeBack.writeFirst(three, hashes).get(30, TimeUnit.SECONDS);
        assertThat(hashes).as("stored: the cache sends their hashes alone").noneMatch(offload::needsCopy);
        kv.blocks.clear(); // the service lost them; the write-back still remembers them stored

        assertThat(offload.offload(4, hashes, List.of()).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.AGAIN);

        assertThat(hashes).as("known missing: copied next time").allMatch(offload::needsCopy);
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.pins.isEmpty());
        assertThat(offload.offloadFailures()).as("not a failure: the sequence may still offload").isZero();
        assertThat(offload.offloadRetries()).as("counted").isOne();
        assertThat(offload.offload(4, hashes, three).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);
        assertThat(three).allMatch(this::pinnedInService);
    }

    @Test
    void anOffloadsCopies_takeItsRoom_untilItsWritesAndPinAreOver() throws Exception {
        start(64, 4);
        CompletableFuture<Void> hold = new CompletableFuture<>();
        kv.putHold = hold;
        assertThat(offload.copyRoom()).as("the write-back's priority budget").isEqualTo(4);

        CompletableFuture<Outcome> offloaded = offload.offload(5, WriteBackTest.chain(3, 85));
        assertThat(offload.copyRoom()).isOne();
        kv.putHold = null;
        hold.complete(null);

        assertThat(offloaded.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);
        await().atMost(Duration.ofSeconds(30)).until(() -> offload.copyRoom() == 4);
    }

    @Test
    void anOffloadWhoseBlocksAreLostAgainBeforeTheSecondPin_failsAndLeavesNothingPinned() throws Exception {
        start(64);
        List<BlockContents> two = WriteBackTest.chain(2, 83);
        writeBack.writeFirst(two, two.stream().map(BlockContents::hash).toList()).get(30, TimeUnit.SECONDS);
        kv.blocks.remove(ByteString.copyFrom(two.get(1).hash().bytes()));
        // Every Put of the block that is sent again is answered after the service lost it once more.
        kv.putDelay = Duration.ofMillis(200);
        Thread.ofPlatform().daemon().start(() -> {
            await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(5))
                    .until(() -> kv.blocks.containsKey(ByteString.copyFrom(two.get(1).hash().bytes())));
            kv.blocks.remove(ByteString.copyFrom(two.get(1).hash().bytes()));
        });

        assertThat(offload.offload(3, two).get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.FAILED);

        await().atMost(Duration.ofSeconds(30)).until(() -> kv.pins.isEmpty());
        assertThat(offload.offloadFailures()).isEqualTo(1);
        assertThat(offload.pinnedSequences()).isZero();
    }
}
