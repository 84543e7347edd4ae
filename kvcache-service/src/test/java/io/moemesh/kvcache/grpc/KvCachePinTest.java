package io.moemesh.kvcache.grpc;

import static io.moemesh.kvcache.grpc.InProcessKvCache.fingerprint;
import static io.moemesh.kvcache.grpc.InProcessKvCache.hash;
import static io.moemesh.kvcache.grpc.InProcessKvCache.key;
import static io.moemesh.kvcache.grpc.InProcessKvCache.wire;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.ByteString;
import io.grpc.Context;
import io.grpc.Status;
import io.moemesh.kvcache.grpc.InProcessKvCache.Answer;
import io.moemesh.kvcache.tier.TestBlocks;
import io.moemesh.proto.kvcache.v1.PinRequest;
import io.moemesh.proto.kvcache.v1.PinResponse;
import io.moemesh.proto.kvcache.v1.UnpinRequest;
import io.moemesh.proto.kvcache.v1.UnpinResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pin and Unpin of the real service over a real store (methods called in-process): a pin id lets a client that does
 * not know whether its Pin ran release exactly what that Pin pinned; a Pin whose caller gave up leaves nothing
 * pinned. Pins nest, so releasing by hash could take another Pin's pin of a shared block.
 */
class KvCachePinTest {
    @TempDir
    Path dir;
    private InProcessKvCache kv;

    @BeforeEach
    void open() {
        kv = new InProcessKvCache(dir, 1, PutStreams.DEFAULT_MAX_STREAMS);
        for (int i = 1; i <= 3; i++) {
            kv.store.put(TestBlocks.block(i));
        }
    }

    @AfterEach
    void close() {
        kv.close();
    }

    private static ByteString id(int i) {
        byte[] b = new byte[16];
        b[0] = (byte) i;
        b[15] = (byte) (i * 7);
        return ByteString.copyFrom(b);
    }

    private static PinRequest pin(ByteString pinId, long... blocks) {
        PinRequest.Builder r = PinRequest.newBuilder().setModelFingerprint(fingerprint()).setLayout(wire());
        for (long b : blocks) {
            r.addBlockHashes(hash(b));
        }
        return pinId == null ? r.build() : r.setPinId(pinId).build();
    }

    private static UnpinRequest unpin(ByteString pinId) {
        return UnpinRequest.newBuilder().setModelFingerprint(fingerprint()).setLayout(wire()).setPinId(pinId).build();
    }

    private Answer<PinResponse> call(PinRequest req) {
        Answer<PinResponse> a = new Answer<>();
        kv.service.pin(req, a);
        return a;
    }

    private Answer<UnpinResponse> call(UnpinRequest req) {
        Answer<UnpinResponse> a = new Answer<>();
        kv.service.unpin(req, a);
        return a;
    }

    private int pinsOf(long block) {
        int n = 0;
        while (kv.store.isPinned(key(block))) {
            kv.store.unpin(key(block));
            n++;
        }
        return n;
    }

    @Test
    void unpinByPinId_releasesExactlyWhatThatPinPinned_evenWhereAnotherPinIdPinnedTheSameBlock() throws Exception {
        assertThat(call(pin(id(1), 1, 2, 99)).value().getPinnedList()).containsExactly(true, true, false);
        assertThat(call(pin(id(2), 2, 3)).value().getPinnedList()).containsExactly(true, true);

        UnpinResponse r = call(unpin(id(1))).value();

        assertThat(r.getReleased()).isEqualTo(2);
        assertThat(r.getUnpinnedList()).isEmpty();
        assertThat(kv.store.isPinned(key(1))).isFalse();
        assertThat(kv.store.isPinned(key(2))).as("pin id 2's pin").isTrue();
        assertThat(call(unpin(id(1))).value().getReleased()).as("unpinned twice").isZero();
        assertThat(kv.store.isPinned(key(2))).isTrue();
        assertThat(call(unpin(id(2))).value().getReleased()).isEqualTo(2);
        assertThat(kv.store.isPinned(key(2))).isFalse();
        assertThat(kv.store.isPinned(key(3))).isFalse();
    }

    /**
     * The answer echoes the pin id it recorded the pins under: a client that finds its id not echoed talks to a
     * service that predates pin ids (which ignores them, so an Unpin of the id would release nothing there).
     */
    @Test
    void aPinsAnswer_echoesThePinIdItHonoured_andNothingForAPinWithoutOne() throws Exception {
        assertThat(call(pin(id(9), 1, 99)).value().getPinId()).isEqualTo(id(9));
        assertThat(call(pin(id(9), 1, 99)).value().getPinId()).as("a repeated Pin of the id").isEqualTo(id(9));
        assertThat(call(pin(null, 2)).value().getPinId()).isEmpty();
    }

    @Test
    void aRepeatedPin_ofTheSameId_isIdempotent_andOfOtherBlocks_isRefused() throws Exception {
        assertThat(call(pin(id(3), 1, 99)).value().getPinnedList()).containsExactly(true, false);
        assertThat(call(pin(id(3), 1, 99)).value().getPinnedList()).containsExactly(true, false);

        Status other = call(pin(id(3), 2)).status();

        assertThat(other.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(other.getDescription()).startsWith("pin_id: already the id of a Pin of other blocks");
        assertThat(pinsOf(1)).as("one pin for both Pins").isEqualTo(1);
        assertThat(kv.store.isPinned(key(2))).isFalse();
    }

    @Test
    void anUnpinByPinId_beforeItsPin_leavesATombstone_soThePinPinsNothing() throws Exception {
        assertThat(call(unpin(id(4))).value().getReleased()).isZero();

        Status s = call(pin(id(4), 1, 2)).status();

        assertThat(s.getCode()).isEqualTo(Status.Code.ABORTED);
        assertThat(s.getDescription()).isEqualTo("pin_id: an Unpin of this pin id came first; nothing pinned");
        assertThat(kv.store.isPinned(key(1))).isFalse();
        assertThat(kv.store.isPinned(key(2))).isFalse();
    }

    @Test
    void unpinByHash_keepsItsMeaning_oneNestedPinOfEachBlock() throws Exception {
        call(pin(null, 1)).value();
        call(pin(id(5), 1)).value();

        UnpinResponse r = call(UnpinRequest.newBuilder().setModelFingerprint(fingerprint()).setLayout(wire())
                .addBlockHashes(hash(1)).addBlockHashes(hash(2)).build()).value();

        assertThat(r.getUnpinnedList()).containsExactly(true, false);
        assertThat(r.getReleased()).isEqualTo(1);
        assertThat(pinsOf(1)).isEqualTo(1);
    }

    @Test
    void aPinId_ofAnotherSize_orAnUnpinByIdWithHashes_isRefused_namingTheField() throws Exception {
        Status size = call(pin(ByteString.copyFrom(new byte[8]), 1)).status();
        Status both = call(unpin(id(6)).toBuilder().addBlockHashes(hash(1)).build()).status();

        assertThat(size.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(size.getDescription()).isEqualTo("pin_id: a pin id has 16 bytes, got 8");
        assertThat(both.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(both.getDescription()).startsWith("block_hashes: must be empty when pin_id is set");
        assertThat(kv.store.isPinned(key(1))).isFalse();
    }

    @Test
    void aPinWithAPinId_andNoBlockHashes_isInvalidArgument_namingTheField() throws Exception {
        Status empty = call(pin(id(10))).status();

        assertThat(empty.getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
        assertThat(empty.getDescription()).isEqualTo("block_hashes: a Pin with a pin_id must name at least one "
                + "block hash");
        assertThat(call(pin(null)).value().getPinnedList()).as("without an id: an empty answer, as before").isEmpty();
    }

    /**
     * A Pin waits for the store's lock while a DRAM put demotes a block to a slow SSD (the lock is held across the
     * write); its caller's deadline passes meanwhile. When it gets the lock it pins, sees the call cancelled, and
     * releases: the caller, which saw DEADLINE_EXCEEDED, could not have released it.
     */
    @Test
    void pin_cancelledWhileWaitingForTheStore_leavesNothingPinned() throws Exception {
        assertPinCancelledWhileWaiting(null);
    }

    @Test
    void pinWithAPinId_cancelledWhileWaitingForTheStore_leavesNothingPinned_andForgetsTheId() throws Exception {
        assertPinCancelledWhileWaiting(id(7));
        assertThat(call(pin(id(7), 3)).value().getPinnedList()).as("the id runs anew").containsExactly(true);
    }

    private void assertPinCancelledWhileWaiting(ByteString pinId) throws Exception {
        InProcessKvCache.Hold hold = kv.holdLowerWrites();
        Thread putting = Thread.ofPlatform().start(() -> kv.store.put(TestBlocks.block(4))); // demotes block 3
        assertThat(hold.entered.await(30, TimeUnit.SECONDS)).isTrue();
        Context.CancellableContext call = Context.current().withCancellation();
        Answer<PinResponse> answer = new Answer<>();
        Thread pinning = Thread.ofPlatform().start(() -> call.run(() -> kv.service.pin(pin(pinId, 3), answer)));
        await().atMost(Duration.ofSeconds(30)).until(() -> pinning.getState() == Thread.State.WAITING);

        call.cancel(null);
        hold.release();
        putting.join();
        pinning.join();

        Status s = answer.status();
        assertThat(s.getCode()).isEqualTo(Status.Code.CANCELLED);
        assertThat(s.getDescription()).startsWith("Pin: the call was cancelled (by the caller or its deadline) after 1 "
                + "of 1 blocks were pinned");
        assertThat(kv.store.isPinned(key(3))).isFalse();
    }

    /** The Unpin of a pin id whose Pin still waits for the store: the Pin, once it runs, releases its own pins. */
    @Test
    void anUnpinByPinId_whileItsPinRuns_leavesNothingPinned() throws Exception {
        InProcessKvCache.Hold hold = kv.holdLowerWrites();
        Thread putting = Thread.ofPlatform().start(() -> kv.store.put(TestBlocks.block(4)));
        assertThat(hold.entered.await(30, TimeUnit.SECONDS)).isTrue();
        Answer<PinResponse> answer = new Answer<>();
        Thread pinning = Thread.ofPlatform().start(() -> kv.service.pin(pin(id(8), 2, 3), answer));
        await().atMost(Duration.ofSeconds(30)).until(() -> pinning.getState() == Thread.State.WAITING);

        assertThat(call(unpin(id(8))).value().getReleased()).as("the Pin releases its own").isZero();
        hold.release();
        putting.join();
        pinning.join();

        assertThat(answer.status().getCode()).isEqualTo(Status.Code.ABORTED);
        assertThat(kv.store.isPinned(key(2))).isFalse();
        assertThat(kv.store.isPinned(key(3))).isFalse();
        assertThat(call(pin(id(8), 2, 3)).status().getCode()).as("a tombstone now").isEqualTo(Status.Code.ABORTED);
        assertThat(List.of(key(2), key(3))).noneMatch(kv.store::isPinned);
    }
}
