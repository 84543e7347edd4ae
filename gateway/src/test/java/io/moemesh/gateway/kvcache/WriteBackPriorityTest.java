package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import java.lang.ref.WeakReference;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Priority writes (swap-outs, Attend offloads: {@link WriteBack#writeFirst}) against the in-memory kvcache.v1
 * service, with the writer held in a Put the test releases ({@link FakeKvCacheService#putHold}) so that what is
 * queued stays queued: the ordinary queue's bound never drops a priority block, a priority block never pushes another
 * out, and swap-outs' copies held (queued or in the writer's Put) never pass their budget. Before, a writeFirst
 * larger than the room left in the queue dropped blocks from the queue's tail, often its own earlier ones.
 */
class WriteBackPriorityTest {
    private static final KvPayload LAYOUT = WriteBackTest.LAYOUT;
    private final FakeKvCacheService kv = new FakeKvCacheService(LAYOUT.blockTokens());
    private final KvCacheClient client = WriteBackTest.clientOf(kv);
    private WriteBack writeBack;

    @AfterEach
    void close() {
        release();
        writeBack.close(Duration.ZERO);
        client.close();
        kv.close();
    }

    private static List<BlockHash> hashes(List<BlockContents> blocks) {
        return blocks.stream().map(BlockContents::hash).toList();
    }

    private boolean inService(BlockContents b) {
        return kv.blocks.containsKey(ByteString.copyFrom(b.hash().bytes()));
    }

    /**
     * {@code blocks} handed over ({@code offer}) and taken by the writer, whose Put then waits for {@link #release}:
     * returns once the service holds that Put (the writer took and counted its batch before it sent it).
     */
    private void holdTheWriter(Runnable offer) {
        kv.putHold = new CompletableFuture<>();
        int held = kv.heldPuts.get();
        offer.run();
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.heldPuts.get() == held + 1);
    }

    /** One ordinary block accepted and taken by the writer, whose Put waits for {@link #release}. */
    private void holdTheWriter() {
        holdTheWriter(() -> writeBack.accept(WriteBackTest.chain(1, 90).getFirst()));
    }

    /** Lets the held Put and every later one answer. */
    private void release() {
        CompletableFuture<Void> hold = kv.putHold;
        kv.putHold = null;
        if (hold != null) {
            hold.complete(null);
        }
    }

    @Test
    void writeFirst_largerThanTheOrdinaryQueue_storesEveryBlock_andDropsNone() throws Exception {
        writeBack = new WriteBack(client, 4, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        holdTheWriter();
        List<BlockContents> six = WriteBackTest.chain(6, 91);

        CompletableFuture<Void> done = writeBack.writeFirst(six, hashes(six), true);
        assertThat(writeBack.queuedBlocks()).as("all six queued behind the held Put").isEqualTo(6);

        release();
        done.get(30, TimeUnit.SECONDS);
        assertThat(six).allMatch(this::inService).allMatch(b -> writeBack.memory().isStored(b.hash()));
        assertThat(writeBack.droppedBlocks()).isZero();
    }

    @Test
    void aSwapOut_neverPushesOutAnOffloadsQueuedBlocks() throws Exception {
        writeBack = new WriteBack(client, 4, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        holdTheWriter();
        List<BlockContents> offload = WriteBackTest.chain(3, 92);
        List<BlockContents> swap = WriteBackTest.chain(3, 93);

        CompletableFuture<Void> first = writeBack.writeFirst(offload, hashes(offload), true);
        CompletableFuture<Void> second = writeBack.writeFirst(swap, hashes(swap));
        assertThat(writeBack.queuedBlocks()).isEqualTo(6);

        release();
        CompletableFuture.allOf(first, second).get(30, TimeUnit.SECONDS);
        assertThat(offload).allMatch(this::inService);
        assertThat(swap).allMatch(this::inService);
        assertThat(writeBack.droppedBlocks()).isZero();
    }

    @Test
    void ordinaryBlocks_areDroppedWhenTheirQueueIsFull_uncopied_whilePriorityOnesStillGoIn() {
        writeBack = new WriteBack(client, 2, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        holdTheWriter();
        List<BlockContents> ordinary = WriteBackTest.chain(2, 94);
        ordinary.forEach(writeBack::accept);
        BlockHash third = WriteBackTest.chain(3, 94).get(2).hash();

        assertThat(writeBack.wants(third)).as("no room: not even copied").isFalse();
        assertThat(writeBack.droppedBlocks()).isEqualTo(1);
        List<BlockContents> swap = WriteBackTest.chain(3, 95);
        writeBack.writeFirst(swap, hashes(swap));
        assertThat(writeBack.queuedBlocks()).isEqualTo(5);
        assertThat(writeBack.droppedBlocks()).isEqualTo(1);
    }

    @Test
    void aSwapOut_copiesAndQueuesOnlyItsLeadingBlocksThatFitThePriorityBound() throws Exception {
        writeBack = new WriteBack(client, 64, 4, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        holdTheWriter();
        List<BlockContents> six = WriteBackTest.chain(6, 96);

        Predicate<BlockHash> copy = writeBack.swapOutFilter();
        List<BlockContents> copied = six.stream().filter(b -> copy.test(b.hash())).toList();
        assertThat(copied).as("the leading four").containsExactlyElementsOf(six.subList(0, 4));
        CompletableFuture<Void> done = writeBack.writeFirst(copied, hashes(six));
        release();
        done.get(30, TimeUnit.SECONDS);

        assertThat(six.subList(0, 4)).allMatch(this::inService);
        assertThat(writeBack.droppedBlocks()).isEqualTo(2);
        assertThat(writeBack.priorityRoom()).isEqualTo(4);
    }

    @Test
    void anOffloadThatGaveUp_hasItsQueuedBlocksWithdrawn_andTheyMayBeOfferedAgain() throws Exception {
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        holdTheWriter();
        List<BlockContents> three = WriteBackTest.chain(3, 97);
        CompletableFuture<Void> done = writeBack.writeFirst(three, hashes(three), true);

        writeBack.withdraw(hashes(three));

        assertThat(writeBack.queuedBlocks()).isZero();
        assertThat(writeBack.priorityRoom()).isEqualTo(64);
        release();
        done.get(30, TimeUnit.SECONDS);
        assertThat(three).allMatch(b -> writeBack.lacks(b.hash()));
    }

    /**
     * A slow service: each swap-out's copies wait while the writer's Put of earlier ones is held. Swap-outs' copies
     * held, queued or in that Put, never pass the budget, and offloads' copies (taken whole) count against it.
     * Before, only queued ones counted, so every batch the writer took let swap-outs copy a batch more.
     */
    @Test
    void swapOutCopiesHeld_queuedOrBeingWritten_neverPassTheBudget_offloadsCountedAgainstIt() throws Exception {
        int budget = 6;
        writeBack = new WriteBack(client, 64, budget, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        List<CompletableFuture<Void>> swaps = new java.util.ArrayList<>();
        // The writer takes a swap-out's blocks (some or all four) and is held in their Put: still four copies held.
        List<BlockContents> first = WriteBackTest.chain(4, 100);
        holdTheWriter(() -> swaps.add(swapOut(first)));
        assertThat(writeBack.queuedBlocks()).as("the writer took some").isLessThan(4);
        assertThat(writeBack.priorityCopies()).as("queued or in the held Put").isEqualTo(4);

        List<BlockContents> second = WriteBackTest.chain(4, 101);
        swaps.add(swapOut(second));
        assertThat(writeBack.priorityCopies()).as("two fit").isEqualTo(budget);
        assertThat(second.subList(2, 4)).allMatch(b -> writeBack.lacks(b.hash()));
        List<BlockContents> third = WriteBackTest.chain(4, 102);
        swaps.add(swapOut(third));
        assertThat(writeBack.priorityCopies()).as("none fits").isEqualTo(budget);

        // An offload is taken whole, past the budget, and leaves swap-outs no room until it is settled.
        List<BlockContents> offload = WriteBackTest.chain(3, 103);
        CompletableFuture<Void> offloaded = writeBack.writeFirst(offload, hashes(offload), true);
        assertThat(writeBack.priorityCopies()).isEqualTo(budget + 3);
        swaps.add(swapOut(WriteBackTest.chain(2, 104)));
        assertThat(writeBack.priorityCopies()).isEqualTo(budget + 3);
        assertThat(writeBack.droppedBlocks()).as("2 + 4 + 2 swap-out blocks past the budget").isEqualTo(8);

        release();
        CompletableFuture.allOf(swaps.toArray(CompletableFuture[]::new)).get(30, TimeUnit.SECONDS);
        offloaded.get(30, TimeUnit.SECONDS);
        assertThat(offload).allMatch(this::inService);
        assertThat(first).allMatch(this::inService);
        assertThat(writeBack.priorityCopies()).isZero();
        assertThat(writeBack.priorityRoom()).isEqualTo(budget);
    }

    /**
     * A slow service answers a swap-out's first Put and holds its second: the blocks already stored are settled
     * (no longer counted against the budget), so nothing may still hold their copies. Before, the swap-out's future
     * kept every entry it waited for, their key/value arrays included, until its last block was settled: heap past
     * the budget.
     */
    @Test
    void aSwapOutsStoredCopies_becomeUnreachable_whileItsOtherBlocksWait() {
        // A Put deadline far past the waits below: the held Put must not end (and settle the swap-out) meanwhile.
        writeBack = new WriteBack(client, 64, 64, Duration.ofMinutes(5), 1000, Duration.ofSeconds(5));
        holdTheWriter(); // Put 1, an ordinary block: the swap-out's blocks all queue behind it
        int held = kv.heldPuts.get();
        List<WeakReference<float[]>> firstKeys = new java.util.ArrayList<>();
        CompletableFuture<Void> done = swapOutKeepingOnly(WriteBack.BATCH_BLOCKS + 1, firstKeys);

        answerHeldPutAndHoldTheNext(); // Put 2: the swap-out's first BATCH_BLOCKS blocks, held
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.heldPuts.get() == held + 1);
        answerHeldPutAndHoldTheNext(); // Put 2 answered; Put 3, its last block, held
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.heldPuts.get() == held + 2);
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.priorityCopies() == 1);

        assertThat(done).isNotDone();
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50)).until(() -> {
            System.gc();
            return firstKeys.getFirst().get() == null;
        });
        assertThat(done).as("freed while its last block still waits").isNotDone();
        release();
        assertThat(done).succeedsWithin(Duration.ofSeconds(30));
    }

    /** A swap-out of {@code n} fresh blocks whose only trace the test keeps is a weak reference to block 0's keys. */
    private CompletableFuture<Void> swapOutKeepingOnly(int n, List<WeakReference<float[]>> firstKeys) {
        List<BlockContents> blocks = WriteBackTest.chain(n, 106);
        firstKeys.add(new WeakReference<>(blocks.getFirst().keys()[0]));
        return writeBack.writeFirst(blocks, hashes(blocks));
    }

    /** The held Put answers; the next one is held (set first, so the writer's next Put cannot slip through). */
    private void answerHeldPutAndHoldTheNext() {
        CompletableFuture<Void> answered = kv.putHold;
        kv.putHold = new CompletableFuture<>();
        answered.complete(null);
    }

    /** A swap-out as RemotePrefixes does it: copies what swapOutFilter takes, then queues those ahead. */
    private CompletableFuture<Void> swapOut(List<BlockContents> chain) {
        Predicate<BlockHash> copy = writeBack.swapOutFilter();
        return writeBack.writeFirst(chain.stream().filter(b -> copy.test(b.hash())).toList(), hashes(chain));
    }

    @Test
    void aBlockTheServiceNoLongerHolds_isForgotten_andWantedAgain() {
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        List<BlockContents> two = WriteBackTest.chain(2, 98);
        two.forEach(writeBack::accept);
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.writtenBlocks() == 2);
        BlockHash first = two.getFirst().hash();
        assertThat(writeBack.wants(first)).isFalse();

        writeBack.memory().notStored(first);

        assertThat(writeBack.wants(first)).isTrue();
        assertThat(writeBack.memory().isStored(first)).isFalse();
        assertThat(writeBack.memory().checksum(first)).isEqualTo(-1);
        assertThat(writeBack.wants(two.get(1).hash())).isFalse();
    }
}
