package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockOffload.Outcome;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What makes the kvcache-service "look down" to the Attend offload (in memory, a pool of 4 blocks): only offloads it
 * did not answer. Before, every offload that ended FAILED counted, also one whose sequence was released while it was
 * in flight and one a full service declined, and three of those refused every prompt longer than the pool with 503.
 */
class AttendOffloadHealthTest {
    private static final int POOL_BLOCKS = 4;
    private final FakeKvCacheService kv = new FakeKvCacheService(WriteBackTest.LAYOUT.blockTokens());
    private final KvCacheClient client = WriteBackTest.clientOf(kv);
    private WriteBack writeBack;
    private AttendOffload offload;
    private int longPrompt;

    @BeforeEach
    void start() throws Exception {
        writeBack = new WriteBack(client, 64, 8, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        offload = new AttendOffload(client, writeBack, 1, 0, Duration.ofSeconds(10), Duration.ofSeconds(10),
                POOL_BLOCKS);
        longPrompt = POOL_BLOCKS * WriteBackTest.LAYOUT.blockTokens() + 1;
        List<BlockContents> warm = WriteBackTest.chain(1, 99);
        writeBack.writeFirst(warm, List.of(warm.getFirst().hash())).get(30, TimeUnit.SECONDS);
    }

    @AfterEach
    void stop() {
        kv.putHold = null;
        kv.declinePuts = false;
        offload.close();
        writeBack.close(Duration.ZERO);
        client.close();
        kv.close();
    }

    private void assertLooksUp() {
        assertThat(offload.promptPositions()).isEqualTo(Integer.MAX_VALUE);
        assertThat(offload.admitPrompt(longPrompt).isPresent()).isTrue();
        assertThat(offload.retryAfterSeconds()).isOne();
    }

    @Test
    void offloadsOfSequencesReleasedWhileInFlight_doNotMakeTheServiceLookDown() throws Exception {
        for (int i = 0; i < AttendOffload.DOWN_AFTER_FAILURES; i++) {
            CompletableFuture<Void> hold = new CompletableFuture<>();
            kv.putHold = hold;
            int before = kv.heldPuts.get();
            CompletableFuture<Outcome> f = offload.offload(i, WriteBackTest.chain(1, 80 + i));
            await().atMost(Duration.ofSeconds(30)).until(() -> kv.heldPuts.get() > before);
            offload.released(i); // preempted or cancelled while its Put is in flight
            kv.putHold = null;
            hold.complete(null);
            assertThat(f.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.FAILED);
        }

        assertLooksUp();
    }

    @Test
    void offloadsAFullServiceDeclined_doNotMakeTheServiceLookDown() throws Exception {
        kv.declinePuts = true;
        for (int i = 0; i < AttendOffload.DOWN_AFTER_FAILURES; i++) {
            assertThat(offload.offload(i, WriteBackTest.chain(1, 70 + i)).get(30, TimeUnit.SECONDS))
                    .isEqualTo(Outcome.FAILED);
        }

        assertThat(offload.offloadFailures()).isEqualTo(AttendOffload.DOWN_AFTER_FAILURES);
        assertLooksUp();
    }

    @Test
    void anOffloadOfManyPutsNotAnswered_countsOnce() throws Exception {
        kv.close();
        // Three Puts each (16 + 16 + 8 blocks), every one unanswered: before, each Put counted, and one offload made
        // the service look down by itself.
        int blocks = 2 * WriteBack.BATCH_BLOCKS + 8;
        for (int i = 0; i < AttendOffload.DOWN_AFTER_FAILURES - 1; i++) {
            assertThat(offload.offload(i, WriteBackTest.chain(blocks, 50 + i)).get(30, TimeUnit.SECONDS))
                    .isEqualTo(Outcome.FAILED);
            assertLooksUp();
        }

        assertThat(offload.offload(9, WriteBackTest.chain(blocks, 59)).get(30, TimeUnit.SECONDS))
                .isEqualTo(Outcome.FAILED);
        assertThat(offload.admitPrompt(longPrompt).isPresent()).as("the third unanswered offload").isFalse();
    }

    @Test
    void offloadsWhosePutsAreNotAnswered_makeTheServiceLookDown_andRefuseLongPrompts() throws Exception {
        kv.close();
        for (int i = 0; i < AttendOffload.DOWN_AFTER_FAILURES; i++) {
            assertThat(offload.offload(i, WriteBackTest.chain(1, 60 + i)).get(30, TimeUnit.SECONDS))
                    .isEqualTo(Outcome.FAILED);
        }

        assertThat(offload.promptPositions()).isEqualTo(POOL_BLOCKS * WriteBackTest.LAYOUT.blockTokens());
        assertThat(offload.admitPrompt(longPrompt - 1).isPresent()).as("a prompt the pool holds").isTrue();
        assertThat(offload.admitPrompt(longPrompt).isPresent()).isFalse();
        assertThat(offload.retryAfterSeconds()).isBetween(1, 10);
    }
}
