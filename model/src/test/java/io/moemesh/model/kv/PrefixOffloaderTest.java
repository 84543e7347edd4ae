package io.moemesh.model.kv;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.engine.BlockPool;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Offloads as plain objects: one sequence of three full 2-token blocks (6 final positions) in an 8-block pool, and
 * an offload whose policy and completion the test sets.
 */
class PrefixOffloaderTest {
    private static final int B = 2;
    private static final long SEQ = 7;
    private static final ModelFingerprint MODEL = ModelFingerprint.of(new byte[32]);

    private final PrefixBlockPool blocks = new PrefixBlockPool(new BlockPool(1, 1, B, 8), MODEL);
    private final PrefixOffloader offloader = new PrefixOffloader(blocks);
    private final Offload offload = new Offload();
    private final CachedSequence s = new CachedSequence(B, "t");
    private final BlockHash[] hashes = new BlockHash[3];

    /**
     * Wants {@code remote} blocks remote; every call gets {@link #next}. Needs no copy of the blocks in {@link
     * #stored}; takes {@link #room} copies at most.
     */
    private static final class Offload implements BlockOffload {
        int remote = 2;
        int room = Integer.MAX_VALUE;
        /** What {@link #awaitRoom} says. */
        boolean waits = true;
        final java.util.Set<BlockHash> stored = new java.util.HashSet<>();
        CompletableFuture<Outcome> next = new CompletableFuture<>();
        /** Each offload's copies. */
        final List<List<BlockContents>> calls = new ArrayList<>();
        /** Each offload's blocks. */
        final List<List<BlockHash>> runs = new ArrayList<>();
        final List<Long> released = new ArrayList<>();

        @Override
        public int remoteBlocks(int length) {
            return remote;
        }

        @Override
        public boolean needsCopy(BlockHash hash) {
            return !stored.contains(hash);
        }

        @Override
        public int copyRoom() {
            return room;
        }

        @Override
        public boolean awaitRoom(long seqId) {
            return waits;
        }

        @Override
        public CompletableFuture<Outcome> offload(long seqId, List<BlockHash> hashes, List<BlockContents> copies) {
            runs.add(hashes);
            calls.add(copies);
            return next;
        }

        @Override
        public void released(long seqId) {
            released.add(seqId);
        }
    }

    @BeforeEach
    void aSequenceOfThreeFinalBlocks() {
        offloader.set(offload);
        BlockHash parent = null;
        for (int i = 0; i < 3; i++) {
            int b = blocks.allocate();
            s.table.add(b);
            hashes[i] = BlockHash.of(parent, new int[] {i, i}, 0, B, MODEL, "t");
            parent = hashes[i];
        }
        s.length = 6;
    }

    private void register(int i, int position) {
        BlockHash parent = i == 0 ? null : hashes[i - 1];
        assertThat(blocks.register(s.table.get(i), hashes[i], parent, new int[] {i, i}, "t", position)).isTrue();
    }

    @AfterEach
    void accounted() {
        int[] tables = new int[8];
        for (int i = 0; i < s.table.size(); i++) {
            tables[s.table.get(i)]++;
        }
        blocks.audit(tables);
    }

    @Test
    void theLeadingHashedBlocks_goToTheOffload_andLeaveTheTableOnlyOnceStored() {
        for (int i = 0; i < 3; i++) {
            register(i, i);
        }
        int third = s.table.get(2);
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.calls).singleElement().satisfies(copies -> assertThat(copies)
                .extracting(BlockContents::hash).containsExactly(hashes[0], hashes[1]));

        offloader.apply(SEQ, s); // still in flight: nothing changes
        assertThat(s.table.size()).isEqualTo(3);
        assertThat(s.remote).isZero();

        offload.next.complete(BlockOffload.Outcome.PINNED);
        offloader.apply(SEQ, s);
        assertThat(s.remote).isEqualTo(2);
        assertThat(s.table.size()).isOne();
        assertThat(s.table.get(0)).isEqualTo(third);
        assertThat(offloader.remoteBlocks()).isEqualTo(2);
        assertThat(blocks.cachedBlocks()).as("let go of, still findable").isEqualTo(2);
        assertThat(blocks.find(hashes[0])).isNotNegative();

        offloader.stepCompleted(SEQ, s);
        assertThat(offload.calls).as("the policy's 2 blocks are remote already").hasSize(1);
        offloader.released(SEQ, s);
        assertThat(offloader.remoteBlocks()).isZero();
        assertThat(offload.released).containsExactly(SEQ);
        for (int i = s.table.size() - 1; i >= 0; i--) {
            blocks.letGo(s.table.get(i));
        }
        s.table.removeFirst(s.table.size());
    }

    @Test
    void theOffload_takesOnlyFinalFullBlocks_whateverThePolicyWants() {
        offload.remote = 10;
        for (int i = 0; i < 3; i++) {
            register(i, i);
        }
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.calls.getFirst()).hasSize(3);
    }

    @Test
    void theOffload_stopsAtTheFirstBlockWithoutAHash() {
        register(0, 0);
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.calls.getFirst()).extracting(BlockContents::hash).containsExactly(hashes[0]);
    }

    @Test
    void theOffload_stopsAtABlockHashedAtAnotherChainPosition() {
        register(0, 0);
        register(1, 5); // another chain's block
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.calls.getFirst()).extracting(BlockContents::hash).containsExactly(hashes[0]);
    }

    @Test
    void nothingToOffload_startsNothing_andAReleaseTellsTheOffloadNothing() {
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.calls).isEmpty();
        offloader.released(SEQ, s);
        assertThat(offload.released).isEmpty();
    }

    @Test
    void anOffloadInFlight_isNotStartedTwice() {
        register(0, 0);
        register(1, 1);
        offloader.stepCompleted(SEQ, s);
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.calls).hasSize(1);
    }

    @Test
    void blocksTheOffloadHoldsAlready_goByTheirHashAlone_withoutCopies() {
        offload.remote = 3;
        offload.stored.add(hashes[0]);
        offload.stored.add(hashes[1]);
        for (int i = 0; i < 3; i++) {
            register(i, i);
        }
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.runs.getFirst()).containsExactly(hashes[0], hashes[1], hashes[2]);
        assertThat(offload.calls.getFirst()).extracting(BlockContents::hash).containsExactly(hashes[2]);
    }

    @Test
    void copiesPastTheOffloadsRoom_stayLocalForNow_andGoInALaterOffload() {
        offload.remote = 3;
        offload.room = 1;
        for (int i = 0; i < 3; i++) {
            register(i, i);
        }
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.runs.getFirst()).containsExactly(hashes[0]);
        assertThat(offloader.pending(s)).isTrue();

        offload.next.complete(BlockOffload.Outcome.PINNED);
        offloader.apply(SEQ, s);
        assertThat(s.remote).isOne();
        offload.next = new CompletableFuture<>();
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.runs).hasSize(2);
        assertThat(offload.runs.get(1)).containsExactly(hashes[1]);
        offloader.released(SEQ, s);
    }

    @Test
    void noRoomForTheFirstCopy_theSequenceWaits_andItsOffloadStartsAtTheBoundaryAfterRoomCameBack() {
        offload.room = 0;
        for (int i = 0; i < 3; i++) {
            register(i, i);
        }
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.runs).isEmpty();
        assertThat(offloader.pending(s)).as("waits for room as for an offload in flight").isTrue();
        offloader.apply(SEQ, s);
        assertThat(offload.runs).as("still no room").isEmpty();

        offload.room = 8;
        offloader.apply(SEQ, s);
        assertThat(offload.runs).singleElement().satisfies(run -> assertThat(run).hasSize(2));
        assertThat(s.awaitingRoom).isFalse();
        offloader.released(SEQ, s);
    }

    @Test
    void anOffloadThatSaysAgain_startsAgainAtTheBoundary_copyingEveryBlockOfItsRun_andIsNotAFailure() {
        for (int i = 0; i < 3; i++) {
            register(i, i);
            offload.stored.add(hashes[i]);
        }
        offload.remote = 3;
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.calls.getFirst()).as("holds them all: nothing copied").isEmpty();
        offload.stored.remove(hashes[1]); // it turned out gone from the tier
        offload.next.complete(BlockOffload.Outcome.AGAIN);
        offload.next = new CompletableFuture<>();

        offloader.apply(SEQ, s);

        assertThat(s.offloadFailed).isFalse();
        assertThat(s.remote).isZero();
        assertThat(offload.runs).hasSize(2);
        // Not only the block found gone: the others, acknowledged again and unpinned meanwhile, may be evicted too
        // before the next Pin, and by hash alone the retries could go round for ever.
        assertThat(offload.calls.get(1)).extracting(BlockContents::hash).containsExactly(hashes[0], hashes[1],
                hashes[2]);

        offload.next.complete(BlockOffload.Outcome.PINNED);
        offloader.apply(SEQ, s);
        assertThat(s.remote).isEqualTo(3);
        offloader.released(SEQ, s);
    }

    @Test
    void aSecondAgainInARow_failsTheOffload_theSequenceStaysLocal() {
        for (int i = 0; i < 3; i++) {
            register(i, i);
            offload.stored.add(hashes[i]);
        }
        offloader.stepCompleted(SEQ, s);
        offload.next.complete(BlockOffload.Outcome.AGAIN);
        offload.next = new CompletableFuture<>();
        offloader.apply(SEQ, s);
        assertThat(offload.runs).hasSize(2);

        offload.next.complete(BlockOffload.Outcome.AGAIN);
        offload.next = new CompletableFuture<>();
        offloader.apply(SEQ, s);
        offloader.stepCompleted(SEQ, s);

        assertThat(s.offloadFailed).isTrue();
        assertThat(offloader.pending(s)).isFalse();
        assertThat(offload.runs).as("no third try").hasSize(2);
        assertThat(s.table.size()).isEqualTo(3);
        offloader.released(SEQ, s);
    }

    @Test
    void aSequenceTheOffloadStopsWaitingFor_isNotPending_keepsItsBlocks_andOffloadsWhenRoomIsBack() {
        offload.room = 0;
        for (int i = 0; i < 3; i++) {
            register(i, i);
        }
        offloader.stepCompleted(SEQ, s);
        assertThat(offloader.pending(s)).as("waits for room").isTrue();

        offload.waits = false; // e.g. past the offload's timeout, or its offloads are failing
        offloader.apply(SEQ, s);
        assertThat(offloader.pending(s)).as("runs on with its blocks local").isFalse();
        assertThat(s.offloadFailed).as("not a failure").isFalse();
        assertThat(s.table.size()).isEqualTo(3);
        offloader.stepCompleted(SEQ, s);
        assertThat(offloader.pending(s)).as("still no room: does not wait again").isFalse();

        offload.room = 8;
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.runs).singleElement().satisfies(run -> assertThat(run).hasSize(2));
        offloader.released(SEQ, s);
    }

    @ParameterizedTest(name = "waits {0}")
    @ValueSource(booleans = {true, false})
    void aSequenceThatWasAskedToWaitForRoom_andEndsBeforeAnyOffload_isReleasedToTheOffload(boolean waits) {
        // The gateway's offload remembers when a sequence began to wait (also once it said no more): without the
        // release it would keep that for ever, a sequence id never coming back.
        offload.room = 0;
        offload.waits = waits;
        for (int i = 0; i < 3; i++) {
            register(i, i);
        }
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.runs).as("no offload started").isEmpty();

        offloader.released(SEQ, s);

        assertThat(offload.released).containsExactly(SEQ);
        assertThat(offloader.remoteBlocks()).isZero();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"false", "exception", "cancelled"})
    void aFailedOffload_leavesTheSequenceLocal_andIsNeverRetried(String outcome) {
        for (int i = 0; i < 3; i++) {
            register(i, i);
        }
        offloader.stepCompleted(SEQ, s);
        switch (outcome) {
            case "false" -> offload.next.complete(BlockOffload.Outcome.FAILED);
            case "exception" -> offload.next.completeExceptionally(new IllegalStateException("service down"));
            default -> offload.next.cancel(false);
        }
        offloader.apply(SEQ, s);
        assertThat(s.table.size()).isEqualTo(3);
        assertThat(s.remote).isZero();
        assertThat(s.offloadFailed).isTrue();
        offload.next = CompletableFuture.completedFuture(BlockOffload.Outcome.PINNED);
        offloader.stepCompleted(SEQ, s);
        assertThat(offload.calls).hasSize(1);
        offloader.released(SEQ, s);
        assertThat(offload.released).as("what it pinned is released").containsExactly(SEQ);
        assertThat(offloader.remoteBlocks()).isZero();
    }
}
