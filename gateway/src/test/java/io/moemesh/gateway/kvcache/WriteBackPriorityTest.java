package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Priority writes (swap-outs, Attend offloads: {@link WriteBack#writeFirst}) against the in-memory kvcache.v1
 * service, with the writer held in a slow Put so that what is queued stays queued: the ordinary queue's bound never
 * drops a priority block, and a priority block never pushes another out. Before, a writeFirst larger than the room
 * left in the queue dropped blocks from the queue's tail, often its own earlier ones.
 */
class WriteBackPriorityTest {
    private static final KvPayload LAYOUT = WriteBackTest.LAYOUT;
    private final FakeKvCacheService kv = new FakeKvCacheService(LAYOUT.blockTokens());
    private final KvCacheClient client = new KvCacheClient(NettyChannelBuilder.forTarget(kv.endpoint(),
            TestCertificates.credentials("gateway").channel()).build(), kv.endpoint(), WriteBackTest.MODEL, LAYOUT,
            null);
    private WriteBack writeBack;

    @AfterEach
    void close() {
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

    /** One ordinary block accepted and taken by the writer, whose Put then answers only after {@code putDelay}. */
    private void holdTheWriter(Duration putDelay) {
        kv.putDelay = putDelay;
        writeBack.accept(WriteBackTest.chain(1, 90).getFirst());
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.queuedBlocks() == 0);
    }

    @Test
    void writeFirst_largerThanTheOrdinaryQueue_storesEveryBlock_andDropsNone() throws Exception {
        writeBack = new WriteBack(client, 4, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        holdTheWriter(Duration.ofSeconds(1));
        List<BlockContents> six = WriteBackTest.chain(6, 91);

        CompletableFuture<Void> done = writeBack.writeFirst(six, hashes(six), true);
        assertThat(writeBack.queuedBlocks()).as("all six queued behind the held Put").isEqualTo(6);

        done.get(30, TimeUnit.SECONDS);
        assertThat(six).allMatch(this::inService).allMatch(b -> writeBack.stored(b.hash()));
        assertThat(writeBack.droppedBlocks()).isZero();
    }

    @Test
    void aSwapOut_neverPushesOutAnOffloadsQueuedBlocks() throws Exception {
        writeBack = new WriteBack(client, 4, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        holdTheWriter(Duration.ofSeconds(1));
        List<BlockContents> offload = WriteBackTest.chain(3, 92);
        List<BlockContents> swap = WriteBackTest.chain(3, 93);

        CompletableFuture<Void> first = writeBack.writeFirst(offload, hashes(offload), true);
        CompletableFuture<Void> second = writeBack.writeFirst(swap, hashes(swap));

        CompletableFuture.allOf(first, second).get(30, TimeUnit.SECONDS);
        assertThat(offload).allMatch(this::inService);
        assertThat(swap).allMatch(this::inService);
        assertThat(writeBack.droppedBlocks()).isZero();
    }

    @Test
    void ordinaryBlocks_areDroppedWhenTheirQueueIsFull_uncopied_whilePriorityOnesStillGoIn() {
        writeBack = new WriteBack(client, 2, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        holdTheWriter(Duration.ofSeconds(1));
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
        holdTheWriter(Duration.ofSeconds(1));
        List<BlockContents> six = WriteBackTest.chain(6, 96);

        Predicate<BlockHash> copy = writeBack.swapOutFilter();
        List<BlockContents> copied = six.stream().filter(b -> copy.test(b.hash())).toList();
        assertThat(copied).as("the leading four").containsExactlyElementsOf(six.subList(0, 4));
        writeBack.writeFirst(copied, hashes(six)).get(30, TimeUnit.SECONDS);

        assertThat(six.subList(0, 4)).allMatch(this::inService);
        assertThat(writeBack.droppedBlocks()).isEqualTo(2);
        assertThat(writeBack.priorityRoom()).isEqualTo(4);
    }

    @Test
    void anOffloadThatGaveUp_hasItsQueuedBlocksWithdrawn_andTheyMayBeOfferedAgain() throws Exception {
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        holdTheWriter(Duration.ofSeconds(2));
        List<BlockContents> three = WriteBackTest.chain(3, 97);
        CompletableFuture<Void> done = writeBack.writeFirst(three, hashes(three), true);

        writeBack.withdraw(hashes(three));

        assertThat(writeBack.queuedBlocks()).isZero();
        assertThat(writeBack.priorityRoom()).isEqualTo(64);
        done.get(30, TimeUnit.SECONDS);
        assertThat(three).allMatch(b -> writeBack.lacks(b.hash()));
    }

    @Test
    void aBlockTheServiceNoLongerHolds_isForgotten_andWantedAgain() {
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        List<BlockContents> two = WriteBackTest.chain(2, 98);
        two.forEach(writeBack::accept);
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.writtenBlocks() == 2);
        BlockHash first = two.getFirst().hash();
        assertThat(writeBack.wants(first)).isFalse();

        writeBack.notStored(first);

        assertThat(writeBack.wants(first)).isTrue();
        assertThat(writeBack.stored(first)).isFalse();
        assertThat(writeBack.checksum(first)).isEqualTo(-1);
        assertThat(writeBack.wants(two.get(1).hash())).isFalse();
    }
}
