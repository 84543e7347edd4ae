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
 * counted as pending and stalled admissions, never marked failed. A sequence waiting for room waits until it gets it
 * unless offloads keep failing in a row (the service looks down).
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
    void aSequenceShortOfCopyRoom_keepsWaitingAfterOneFailedOffload_andStopsOnceTheServiceLooksDown()
            throws Exception {
        CompletableFuture<Outcome> taking = offload.offload(1, WriteBackTest.chain(2, 92));
        assertThat(offload.copyRoom()).isZero();
        assertThat(offload.awaitRoom(3)).as("room comes back within the offload timeout").isTrue();

        assertThat(taking.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.FAILED);
        assertThat(offload.awaitRoom(5)).as("one failure (a full service, a timeout) says nothing of the others")
                .isTrue();

        List<CompletableFuture<Outcome>> more = List.of(offload.offload(6, WriteBackTest.chain(1, 93)),
                offload.offload(7, WriteBackTest.chain(1, 94)));
        for (CompletableFuture<Outcome> f : more) {
            assertThat(f.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.FAILED);
        }

        assertThat(offload.offloadFailures()).isEqualTo(AttendOffload.DOWN_AFTER_FAILURES);
        assertThat(offload.awaitRoom(3)).as("the service looks down: it runs on with its blocks local").isFalse();
        assertThat(offload.awaitRoom(8)).as("and a new one does not begin to wait").isFalse();
    }

    @Test
    void aSequenceShortOfCopyRoom_keepsWaitingPastTheOffloadTimeout_whileOffloadsHoldTheRoom() throws Exception {
        kv.silentPins = false;
        CompletableFuture<Void> hold = new CompletableFuture<>();
        kv.putHold = hold;
        long since = System.nanoTime();
        CompletableFuture<Outcome> taking = offload.offload(1, WriteBackTest.chain(2, 95));
        assertThat(offload.copyRoom()).isZero();
        assertThat(offload.awaitRoom(4)).isTrue();

        kv.putHold = null;
        hold.complete(null);
        assertThat(taking.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);

        // Before, the wait ended here, and a sequence longer than the pool was refused or ended with length (its
        // room taken again by other sequences' next offloads in between).
        await().atMost(Duration.ofSeconds(30)).until(() -> System.nanoTime() - since > OFFLOAD_TIMEOUT.toNanos());
        CompletableFuture<Void> again = new CompletableFuture<>();
        kv.putHold = again;
        CompletableFuture<Outcome> retaking = offload.offload(2, WriteBackTest.chain(2, 97));
        assertThat(offload.copyRoom()).isZero();
        assertThat(offload.awaitRoom(4)).as("a busy service is not a failing one: the room comes back").isTrue();
        kv.putHold = null;
        again.complete(null);
        assertThat(retaking.get(30, TimeUnit.SECONDS)).isEqualTo(Outcome.PINNED);
        assertThat(offload.offload(4, WriteBackTest.chain(2, 96)).get(30, TimeUnit.SECONDS))
                .isEqualTo(Outcome.PINNED);
        assertThat(offload.offloadFailures()).as("not a failure").isZero();
        assertThat(offload.roomWaiters()).as("its offload started: no wait remembered").isZero();
    }

    @Test
    void aReleasedSequence_leavesNoWaitRemembered_andANewLifeOfTheIdWaitsAgain() {
        assertThat(offload.awaitRoom(4)).isTrue();

        offload.released(4);

        assertThat(offload.roomWaiters()).isZero();
        assertThat(offload.awaitRoom(4)).isTrue();
    }
}
