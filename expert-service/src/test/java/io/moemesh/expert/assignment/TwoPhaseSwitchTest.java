package io.moemesh.expert.assignment;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.LoadedExpert;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The two-phase switch of {@link AssignmentManager} (expert.proto, LoadAssignmentRequest stages) on plain objects
 * with a fake clock: epoch 1 is served, epoch 2 prepared next to it, then committed or aborted.
 */
class TwoPhaseSwitchTest {
    private static final long GRACE = Duration.ofSeconds(10).toNanos();
    private static ExpertModel model;

    private record Fake(ExpertKey key, long byteSize) implements LoadedExpert {
    }

    private final AtomicLong now = new AtomicLong(1_000);
    private final ResidentSet resident = new ResidentSet(10_000, k -> new Fake(k, 100));
    private final AssignmentManager manager = new AssignmentManager(model, "expert-1", resident, Assignment.empty(),
            Duration.ofNanos(GRACE), 1000, now::get);

    @BeforeAll
    static void open() {
        model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL)); // 4 layers × 8 experts
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static ExpertKey k(int layer, int expert) {
        return new ExpertKey(layer, expert);
    }

    /** Epoch 1 served: layer 0 experts 0 and 1. */
    @BeforeEach
    void serveEpoch1() {
        manager.load("expert-1", 1, List.of(k(0, 0), k(0, 1)));
    }

    private void prepare2() {
        LoadResult r = manager.prepare("expert-1", 2, List.of(k(0, 1), k(0, 2)));
        assertThat(r).isEqualTo(new LoadResult(2, 2, 300, 1, 2));
    }

    private void pastManyGraces() {
        now.addAndGet(100 * GRACE);
        manager.expireDrain();
    }

    @Test
    void prepare_loadsNextToTheServed_andAnswersBothEpochs_withNoDrainDeadlineWhilePrepared() {
        prepare2();
        assertThat(resident.residentExperts()).containsExactly(k(0, 0), k(0, 1), k(0, 2));
        assertThat(manager.servingEpoch()).isEqualTo(1);
        assertThat(manager.preparedEpoch()).isEqualTo(2);
        pastManyGraces();
        assertThat(manager.checkHeld(1, 0, new int[] {0, 1})).as("the served epoch, long past a grace").isEqualTo(1);
        assertThat(manager.checkHeld(2, 0, new int[] {1, 2})).as("the prepared epoch, answered already").isEqualTo(1);
        assertThatThrownBy(() -> manager.checkHeld(2, 0, new int[] {0})).isInstanceOf(ExpertNotHeldException.class)
                .hasMessage("layer 0 expert 0 is not held by expert-1 (epoch 2)");
        assertThatThrownBy(() -> manager.checkHeld(1, 0, new int[] {2})).isInstanceOf(ExpertNotHeldException.class);
        assertThat(manager.checkHeld(0, 0, new int[] {0, 1, 2})).as("epoch 0: everything answered").isEqualTo(1);
        assertThat(resident.residentExperts()).containsExactly(k(0, 0), k(0, 1), k(0, 2));
    }

    @Test
    void commit_makesThePreparedServed_theOldDrainsForTheGrace_thenIsStaleAndDropped() {
        prepare2();
        now.addAndGet(5 * GRACE); // time spent prepared does not count against the grace
        assertThat(manager.commit("expert-1", 2)).isEqualTo(new LoadResult(2, 2, 300, 2, 0));
        assertThat(manager.checkHeld(2, 0, new int[] {1, 2})).isEqualTo(2);
        assertThat(manager.checkHeld(1, 0, new int[] {0})).as("epoch 1 drains").isEqualTo(2);
        now.addAndGet(GRACE - 1);
        manager.expireDrain();
        assertThat(manager.checkHeld(1, 0, new int[] {0})).isEqualTo(2);
        assertThat(resident.isResident(k(0, 0))).isTrue();
        now.addAndGet(1);
        assertThatThrownBy(() -> manager.checkHeld(1, 0, new int[] {1}))
                .isInstanceOf(EpochNotServedException.class).hasMessage("stale epoch 1, serving 2");
        manager.expireDrain();
        assertThat(resident.residentExperts()).containsExactly(k(0, 1), k(0, 2));
    }

    @Test
    void abort_dropsThePrepared_andTheServedEpochStaysAnsweredForever() {
        prepare2();
        assertThat(manager.abort("expert-1", 2)).isEqualTo(new LoadResult(2, 0, 200, 1, 0));
        assertThat(resident.residentExperts()).as("the prepared epoch's own experts leave").containsExactly(k(0, 0), k(0, 1));
        assertThatThrownBy(() -> manager.checkHeld(2, 0, new int[] {1}))
                .isInstanceOfSatisfying(EpochNotServedException.class, e -> assertThat(e.stale()).isFalse())
                .hasMessage("epoch 2 is not loaded yet, serving 1");
        pastManyGraces();
        assertThat(manager.checkHeld(1, 0, new int[] {0, 1})).isEqualTo(1);
        assertThat(manager.servingEpoch()).isEqualTo(1);
        assertThat(manager.preparedEpoch()).isZero();
        assertThat(resident.residentExperts()).containsExactly(k(0, 0), k(0, 1));
    }

    @Test
    void repeats_areIdempotent_prepareCommitAndAbort() {
        prepare2();
        assertThat(manager.prepare("expert-1", 2, List.of(k(0, 2), k(0, 1))).preparedEpoch()).isEqualTo(2);
        manager.commit("expert-1", 2);
        now.addAndGet(GRACE / 2);
        assertThat(manager.commit("expert-1", 2).servingEpoch()).as("a repeated commit").isEqualTo(2);
        assertThat(manager.prepare("expert-1", 2, List.of(k(0, 1), k(0, 2))).preparedEpoch())
                .as("the served epoch prepared again: nothing to do").isZero();
        now.addAndGet(GRACE / 2);
        assertThatThrownBy(() -> manager.checkHeld(1, 0, new int[] {0})).as("a repeat does not restart the grace")
                .isInstanceOf(EpochNotServedException.class);
        assertThat(manager.abort("expert-1", 2 + 1).servingEpoch()).as("abort of an unknown epoch").isEqualTo(2);
        assertThat(manager.abort("expert-1", 1).servingEpoch()).as("abort of an older epoch").isEqualTo(2);
        assertThat(manager.checkHeld(2, 0, new int[] {1, 2})).isEqualTo(2);
    }

    @Test
    void prepareOfANewerEpoch_replacesAStillPreparedOlderOne() {
        prepare2();
        manager.prepare("expert-1", 3, List.of(k(0, 3)));
        assertThat(manager.preparedEpoch()).isEqualTo(3);
        assertThat(resident.residentExperts()).as("epoch 2's expert 2 was held by it alone")
                .containsExactly(k(0, 0), k(0, 1), k(0, 3));
        assertThatThrownBy(() -> manager.checkHeld(2, 0, new int[] {2})).isInstanceOf(EpochNotServedException.class);
        assertThat(manager.checkHeld(3, 0, new int[] {3})).isEqualTo(1);
        assertThat(manager.abort("expert-1", 2).preparedEpoch()).as("the replaced epoch is unknown now").isEqualTo(3);
        manager.commit("expert-1", 3);
        assertThat(manager.servingEpoch()).isEqualTo(3);
    }

    static Stream<Arguments> refusedCalls() {
        return Stream.of(
                refused("commit of an epoch neither prepared nor served", m -> m.commit("expert-1", 3),
                        "cannot commit epoch 3: it is neither prepared nor served (serving epoch 1, prepared epoch 2)"),
                refused("abort of the served epoch", m -> m.abort("expert-1", 1),
                        "cannot abort epoch 1: it is the served epoch (only a prepared epoch can be aborted; prepared "
                                + "epoch 2)"),
                refusedNumber("the prepared epoch with other experts", m -> m.prepare("expert-1", 2, List.of(k(0, 2))),
                        "epoch 2 is already prepared with a different assignment (2 experts); a new assignment needs a "
                                + "new epoch"),
                refusedNumber("the served epoch with other experts", m -> m.prepare("expert-1", 1, List.of(k(0, 2))),
                        "epoch 1 is already served with a different assignment (2 experts); a new assignment needs a "
                                + "new epoch"),
                refusedNumber("an epoch jumping past max-epoch-jump", m -> m.prepare("expert-1", 1 + 1001, List.of()),
                        "assignment epoch 1002 jumps 1001 epochs past the served epoch 1, more than "
                                + "moemesh.expert.max-epoch-jump (1000); epoch 1 stays served"),
                refusedNumber("an absurd epoch", m -> m.prepare("expert-1", -1, List.of()),
                        "assignment epoch 18446744073709551615 jumps 18446744073709551614 epochs past the served epoch "
                                + "1, more than moemesh.expert.max-epoch-jump (1000); epoch 1 stays served"),
                refused("commit for another instance", m -> m.commit("expert-2", 2),
                        "assignment is for instance \"expert-2\", this is expert-1"),
                refused("abort for another instance", m -> m.abort("expert-2", 2),
                        "assignment is for instance \"expert-2\", this is expert-1"));
    }

    private static Arguments refused(String what, Consumer<AssignmentManager> call, String message) {
        return Arguments.of(what, call, message, IllegalStateException.class);
    }

    /** A refusal of the epoch's number: its own type, which the grpc package marks EPOCH_NUMBER_REFUSED. */
    private static Arguments refusedNumber(String what, Consumer<AssignmentManager> call, String message) {
        return Arguments.of(what, call, message, EpochNumberRefusedException.class);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("refusedCalls")
    void refusedCalls_nameWhatIsWrong_andChangeNothing(String what, Consumer<AssignmentManager> call, String message,
                                                       Class<? extends IllegalStateException> type) {
        prepare2();
        assertThatThrownBy(() -> call.accept(manager)).isExactlyInstanceOf(type)
                .hasMessage(message);
        assertUnchanged();
    }

    private void assertUnchanged() {
        assertThat(manager.servingEpoch()).isEqualTo(1);
        assertThat(manager.preparedEpoch()).isEqualTo(2);
        assertThat(resident.residentExperts()).containsExactly(k(0, 0), k(0, 1), k(0, 2));
        assertThat(manager.checkHeld(1, 0, new int[] {0, 1})).isEqualTo(1);
        assertThat(manager.checkHeld(2, 0, new int[] {1, 2})).isEqualTo(1);
    }

    @Test
    void epochsOlderThanTheServedOrThePreparedOne_areRefused() {
        AssignmentManager m = new AssignmentManager(model, "expert-1", new ResidentSet(10_000, k -> new Fake(k, 100)),
                Assignment.empty(), Duration.ofNanos(GRACE), 1000, now::get);
        m.load("expert-1", 3, List.of(k(0, 0), k(0, 1)));
        m.prepare("expert-1", 5, List.of(k(0, 1), k(0, 2)));
        assertThatThrownBy(() -> m.prepare("expert-1", 2, List.of(k(0, 1))))
                .isExactlyInstanceOf(EpochNumberRefusedException.class)
                .hasMessage("assignment epoch 2 is older than the served epoch 3");
        assertThatThrownBy(() -> m.prepare("expert-1", 4, List.of(k(0, 1))))
                .isExactlyInstanceOf(EpochNumberRefusedException.class)
                .hasMessage("assignment epoch 4 is older than the prepared epoch 5");
        assertThatThrownBy(() -> m.commit("expert-1", 4)).isExactlyInstanceOf(IllegalStateException.class)
                .hasMessage("cannot commit epoch 4: it is neither prepared nor served (serving epoch 3, prepared epoch 5)");
        assertThat(m.servingEpoch()).isEqualTo(3);
        assertThat(m.preparedEpoch()).isEqualTo(5);
    }

    @Test
    void epochZero_isAnInvalidArgument_inEveryStage() {
        assertThatThrownBy(() -> manager.prepare("expert-1", 0, List.of()))
                .isExactlyInstanceOf(IllegalArgumentException.class).hasMessage("assignment epoch must be >= 1, got 0");
        assertThatThrownBy(() -> manager.commit("expert-1", 0)).isExactlyInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> manager.abort("expert-1", 0)).isExactlyInstanceOf(IllegalArgumentException.class);
        assertThat(manager.servingEpoch()).isEqualTo(1);
    }

    @Test
    void commitWithoutAnythingPrepared_namesNoneAsPrepared() {
        assertThatThrownBy(() -> manager.commit("expert-1", 2)).isExactlyInstanceOf(IllegalStateException.class)
                .hasMessage("cannot commit epoch 2: it is neither prepared nor served (serving epoch 1, prepared none)");
        assertThat(manager.commit("expert-1", 1)).as("the served epoch: a no-op")
                .isEqualTo(new LoadResult(1, 2, 200, 1, 0));
        pastManyGraces();
        assertThat(manager.checkHeld(1, 0, new int[] {0, 1})).isEqualTo(1);
    }

    @Test
    void firstEpochPrepared_onAnInstanceServingNone_mayBeAnythingBelow2pow63() {
        AssignmentManager fresh = new AssignmentManager(model, "expert-1", new ResidentSet(10_000,
                k -> new Fake(k, 100)), Assignment.empty(), Duration.ofNanos(GRACE), 1000, now::get);
        assertThatThrownBy(() -> fresh.prepare("expert-1", Long.MIN_VALUE, List.of(k(0, 0))))
                .isExactlyInstanceOf(EpochNumberRefusedException.class).hasMessageContaining("is not below 2^63");
        assertThat(fresh.prepare("expert-1", 5_000_000, List.of(k(0, 0))).preparedEpoch()).isEqualTo(5_000_000);
        assertThat(fresh.checkHeld(5_000_000, 0, new int[] {0})).as("serving epoch 0 still").isZero();
        fresh.commit("expert-1", 5_000_000);
        assertThat(fresh.servingEpoch()).isEqualTo(5_000_000);
    }

    @Test
    void loadWithoutStage_whileAnEpochIsPrepared_commitsItWhenItIsThatEpoch_andReplacesItWhenNewer() {
        assertThat(manager.load("expert-1", 2, List.of(k(0, 1), k(0, 2)))).isEqualTo(new LoadResult(2, 2, 300, 2, 0));
        manager.prepare("expert-1", 3, List.of(k(0, 3)));
        manager.load("expert-1", 4, List.of(k(0, 4)));
        assertThat(manager.servingEpoch()).isEqualTo(4);
        assertThat(manager.preparedEpoch()).isZero();
        assertThatThrownBy(() -> manager.checkHeld(1, 0, new int[] {0})).as("the older draining epoch ended")
                .isInstanceOf(EpochNotServedException.class);
        assertThat(manager.checkHeld(2, 0, new int[] {2})).as("epoch 2 drains").isEqualTo(4);
        assertThatThrownBy(() -> manager.checkHeld(3, 0, new int[] {3})).as("epoch 3 was never served")
                .isInstanceOf(ExpertNotHeldException.class);
        assertThat(resident.residentExperts()).containsExactly(k(0, 1), k(0, 2), k(0, 4));
    }

    @Test
    void prepareDuringAGrace_letsThatGraceRun_andCommitEndsIt() {
        manager.load("expert-1", 2, List.of(k(0, 2)));
        manager.prepare("expert-1", 3, List.of(k(0, 3)));
        assertThat(manager.checkHeld(1, 0, new int[] {0})).isEqualTo(2);
        now.addAndGet(GRACE);
        manager.expireDrain();
        assertThatThrownBy(() -> manager.checkHeld(1, 0, new int[] {0})).isInstanceOf(EpochNotServedException.class);
        assertThat(resident.residentExperts()).containsExactly(k(0, 2), k(0, 3));
        manager.load("expert-1", 4, List.of(k(0, 4)));
        manager.prepare("expert-1", 5, List.of(k(0, 5)));
        manager.commit("expert-1", 5);
        assertThatThrownBy(() -> manager.checkHeld(2, 0, new int[] {2})).as("only one previous epoch drains")
                .isInstanceOf(EpochNotServedException.class);
        assertThat(manager.checkHeld(4, 0, new int[] {4})).isEqualTo(5);
    }
}
