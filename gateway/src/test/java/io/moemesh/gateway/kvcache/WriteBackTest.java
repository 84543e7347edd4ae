package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The write-back queue against the in-memory kvcache.v1 service over mutual TLS: blocks are stored once (a hash
 * acknowledged is not sent again, and the CRC32C of what it stored is remembered), a full queue drops and counts instead of blocking,
 * a service that is down fails the blocks (counted, forgotten: offered again later), and one back on its address is
 * written to again.
 */
class WriteBackTest {
    static final KvPayload LAYOUT = new KvPayload(2, 2, 4, 8);
    static final ModelFingerprint MODEL = ModelFingerprint.of(new byte[32]);
    private final FakeKvCacheService kv = new FakeKvCacheService(4);
    private final KvCacheClient client = new KvCacheClient(NettyChannelBuilder.forTarget(kv.endpoint(),
            TestCertificates.credentials("gateway").channel()).build(), kv.endpoint(), MODEL, LAYOUT, null);
    private WriteBack writeBack;

    @AfterEach
    void close() {
        if (writeBack != null) {
            writeBack.close(Duration.ZERO);
        }
        client.close();
        kv.close();
    }

    /** A client of {@code kv} (mTLS as "gateway") for blocks of {@link #LAYOUT} under {@link #MODEL}. */
    static KvCacheClient clientOf(FakeKvCacheService kv) {
        return new KvCacheClient(NettyChannelBuilder.forTarget(kv.endpoint(),
                TestCertificates.credentials("gateway").channel()).build(), kv.endpoint(), MODEL, LAYOUT, null);
    }

    /**
     * Blocks 0..n-1 of one chain of {@link #LAYOUT} under the zero fingerprint, tenant "t", their keys and values
     * drawn from the position (AttendOffloadAdmissionTest stores them in a real service of that layout).
     */
    static List<BlockContents> chain(int n, int seed) {
        List<BlockContents> out = new ArrayList<>();
        BlockHash parent = null;
        for (int i = 0; i < n; i++) {
            int[] tokens = {seed, i, 7, 9};
            BlockHash h = BlockHash.of(parent, tokens, 0, 4, MODEL, "t");
            float[][] k = new float[2][LAYOUT.floatsPerLayer()];
            float[][] v = new float[2][LAYOUT.floatsPerLayer()];
            for (int l = 0; l < 2; l++) {
                java.util.Arrays.fill(k[l], seed * 10 + i);
                java.util.Arrays.fill(v[l], -(seed * 10 + i));
            }
            out.add(new BlockContents(h, parent, tokens, "t", i, k, v));
            parent = h;
        }
        return out;
    }

    private static List<BlockHash> hashes(List<BlockContents> blocks) {
        return blocks.stream().map(BlockContents::hash).toList();
    }

    @Test
    void blocksAreStoredOnce_andTheirChecksumRemembered() {
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        List<BlockContents> c = chain(3, 1);
        c.forEach(writeBack::accept);
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.writtenBlocks() == 3);
        assertThat(kv.stored.get()).isEqualTo(3);
        for (BlockContents b : c) {
            assertThat(writeBack.wants(b.hash())).isFalse();
            byte[] payload = LAYOUT.encode(b.keys(), b.values());
            assertThat(writeBack.memory().checksum(b.hash())).isEqualTo(StoredBlocks.crc32c(payload));
        }
        c.forEach(writeBack::accept);
        assertThat(writeBack.queuedBlocks()).isZero();
        assertThat(client.lookup(hashes(c), Duration.ofSeconds(10))).isEqualTo(3);
        assertThat(client.get(hashes(c), Duration.ofSeconds(10))).hasSize(3);
        assertThat(writeBack.writtenBytes()).isEqualTo(3L * LAYOUT.bytes());
    }

    @Test
    void aBlockAnotherGatewayStoredFirst_isStored_butHasNoChecksum_andOnlyOtherBytesFailTheCheck() {
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        WriteBack other = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        try {
            List<BlockContents> c = chain(2, 4);
            other.accept(c.getFirst());
            await().atMost(Duration.ofSeconds(30)).until(() -> other.writtenBlocks() == 1);
            c.forEach(writeBack::accept);
            await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.writtenBlocks() == 2);
            // ALREADY_PRESENT: the service kept the other gateway's copy, whose floats may differ bitwise
            BlockHash first = c.getFirst().hash();
            assertThat(writeBack.memory().isStored(first)).isTrue();
            assertThat(writeBack.memory().checksum(first)).isEqualTo(-1);
            assertThat(writeBack.memory().heldOtherBytes(first, new byte[LAYOUT.bytes()])).isFalse();
            // STORED: its own bytes pass, any others fail
            BlockHash second = c.get(1).hash();
            byte[] payload = LAYOUT.encode(c.get(1).keys(), c.get(1).values());
            assertThat(writeBack.memory().heldOtherBytes(second, payload)).isFalse();
            payload[0] ^= 1;
            assertThat(writeBack.memory().heldOtherBytes(second, payload)).isTrue();
        } finally {
            other.close(Duration.ZERO);
        }
    }

    @Test
    void aFullQueue_dropsAndCountsBlocks_neverBlockingTheCaller() {
        // The writer's Puts wait until released: it takes at most one batch (16) meanwhile, the queue holds 2.
        java.util.concurrent.CompletableFuture<Void> hold = new java.util.concurrent.CompletableFuture<>();
        kv.putHold = hold;
        writeBack = new WriteBack(client, 2, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        List<BlockContents> c = chain(40, 2);
        c.forEach(writeBack::accept);
        assertThat(writeBack.droppedBlocks()).isGreaterThanOrEqualTo(40 - 16 - 2);
        kv.putHold = null;
        hold.complete(null);
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.queuedBlocks() == 0
                && writeBack.writtenBlocks() + writeBack.droppedBlocks() == 40);
        BlockContents dropped = c.stream().filter(b -> writeBack.wants(b.hash())).findFirst().orElseThrow();
        assertThat(dropped).as("a dropped block may be offered again").isNotNull();
    }

    @Test
    void aServiceThatIsDown_failsTheBlocks_andForgetsThem() {
        kv.stop();
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(2), 1000, Duration.ofSeconds(5));
        List<BlockContents> c = chain(2, 3);
        c.forEach(writeBack::accept);
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.failedBlocks() == 2);
        assertThat(writeBack.wants(c.getFirst().hash())).isTrue();
        assertThat(writeBack.memory().checksum(c.getFirst().hash())).isEqualTo(-1);
    }

    /**
     * A service back on its address after an outage is written to again (the client asks its channel to reconnect
     * instead of waiting out grpc-java's backoff): the blocks that failed meanwhile, offered again as the cache
     * offers them when they are released or evicted again, are stored.
     */
    @Test
    void aServiceBackOnItsAddress_isWrittenToAgain() {
        kv.stop();
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(2), 1000, Duration.ofSeconds(5));
        List<BlockContents> c = chain(2, 7);
        c.forEach(writeBack::accept);
        await().atMost(Duration.ofSeconds(30)).until(() -> writeBack.failedBlocks() == 2);
        kv.restart();
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(200)).until(() -> {
            c.forEach(writeBack::accept);
            return writeBack.writtenBlocks() == 2;
        });
        assertThat(kv.stored.get()).isEqualTo(2);
        assertThat(client.lookup(hashes(c), Duration.ofSeconds(10))).isEqualTo(2);
    }

    @Test
    void aSwapOutsBlocks_jumpTheQueue_andItsFutureCompletesWhenTheyAreStored() throws Exception {
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        List<BlockContents> c = chain(3, 4);
        writeBack.writeFirst(c, hashes(c)).get(30, java.util.concurrent.TimeUnit.SECONDS);
        assertThat(client.lookup(hashes(c), Duration.ofSeconds(10))).isEqualTo(3);
    }

    @Test
    void close_stillWritesWhatIsQueued_withinTheDrainTime() {
        writeBack = new WriteBack(client, 64, 64, Duration.ofSeconds(10), 1000, Duration.ofSeconds(30));
        List<BlockContents> c = chain(5, 5);
        c.forEach(writeBack::accept);
        writeBack.close();
        assertThat(kv.stored.get()).isEqualTo(5);
        assertThat(writeBack.wants(chain(1, 6).getFirst().hash())).as("closed: takes nothing more").isFalse();
        writeBack = null;
    }
}
