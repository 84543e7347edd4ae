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
 * The Attend offload's copy room against a kvcache-service that stores blocks but never answers a Pin or an Unpin
 * (in memory, mutual TLS; a 1 s offload timeout, a budget of 2 copies). Before, an offload's copies held their room
 * until its Pins were over, and the Pins (each up to the offload timeout) queue on one pin thread with the Unpins of
 * the failed ones: the room came back long after the offloads had failed, while every sequence waiting for it
 * counted as pending and stalled admissions, never marked failed.
 */
class AttendOffloadCopyRoomTest {
    private static final Duration OFFLOAD_TIMEOUT = Duration.ofSeconds(1);
    private final FakeKvCacheService kv = new FakeKvCacheService(WriteBackTest.LAYOUT.blockTokens());
    private final KvCacheClient client = WriteBackTest.clientOf(kv);
    private WriteBack writeBack;
    private AttendOffload offload;

    @BeforeEach
    void start() throws Exception {
        writeBack = new WriteBack(client, 64, 2, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        offload = new AttendOffload(client, writeBack, 1, 0, Duration.ofSeconds(10), OFFLOAD_TIMEOUT, 64);
        // A warm channel: the offloads' Puts are answered at once, so their Pins are what they wait for.
        List<BlockContents> warm = WriteBackTest.chain(1, 99);
        writeBack.writeFirst(warm, List.of(warm.getFirst().hash())).get(30, TimeUnit.SECONDS);
        kv.silentPins = true;
    }

    @AfterEach
    void stop() {
        kv.silentPins = false;
        offload.close();
        writeBack.close(Duration.ZERO);
        client.close();
        kv.close();
    }

    @Test
    void offloadsWhosePinsAreNeverAnswered_giveTheirCopyRoomBackWhenTheySettle_andALaterPinIsNotSent()
            throws Exception {
        // Their Puts are answered half the offload timeout later: the first Pin starts then, and its deadline falls
        // well after both offloads timed out, the second offload's Pin queued behind it on the pin thread.
        CompletableFuture<Void> hold = new CompletableFuture<>();
        kv.putHold = hold;
        CompletableFuture<Outcome> first = offload.offload(1, WriteBackTest.chain(1, 90));
        CompletableFuture<Outcome> second = offload.offload(2, WriteBackTest.chain(1, 91));
        assertThat(offload.copyRoom()).isZero();
        await().pollDelay(OFFLOAD_TIMEOUT.dividedBy(2)).atMost(Duration.ofSeconds(30)).until(() -> kv.heldPuts.get() >= 1);
        kv.putHold = null;
        hold.complete(null);

        assertThat(first.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.FAILED);
        assertThat(second.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.FAILED);

        // The first Pin still waits for its deadline, the second offload's turn on the pin thread is after it.
        assertThat(offload.copyRoom()).as("the room is back once the offloads settled").isEqualTo(2);
        await().atMost(Duration.ofSeconds(30)).until(() -> kv.unpinCalls.get() >= 1);
        assertThat(kv.pinCalls.get()).as("the second offload, settled before its turn, sent no Pin").isOne();
        assertThat(offload.offloadFailures()).isEqualTo(2);
    }

    @Test
    void aSequenceShortOfCopyRoom_waitsForIt_butNotRightAfterAnOffloadFailed() throws Exception {
        CompletableFuture<Outcome> taking = offload.offload(1, WriteBackTest.chain(2, 92));
        assertThat(offload.copyRoom()).isZero();
        assertThat(offload.awaitRoom(3)).as("room comes back within the offload timeout").isTrue();

        assertThat(taking.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.FAILED);

        assertThat(offload.awaitRoom(5)).as("offloads are failing: it runs on with its blocks local").isFalse();
    }

    @Test
    void aSequenceShortOfCopyRoom_waitsNoLongerThanTheOffloadTimeout_andNotAgainUntilItOffloads() {
        assertThat(offload.awaitRoom(4)).isTrue();

        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(20)).until(() -> !offload.awaitRoom(4));
        assertThat(offload.awaitRoom(4)).isFalse();
        assertThat(offload.offloadFailures()).as("not a failure").isZero();

        offload.released(4);
        assertThat(offload.awaitRoom(4)).as("a new life of the id waits again").isTrue();
    }
}
