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
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class AssignmentManagerTest {
    private static final long GRACE = Duration.ofSeconds(10).toNanos();
    private static ExpertModel model;

    private record Fake(ExpertKey key, long byteSize) implements LoadedExpert {
    }

    private final AtomicLong now = new AtomicLong(1_000);
    private ResidentSet resident = new ResidentSet(10_000, k -> new Fake(k, 100));
    private AssignmentManager manager = new AssignmentManager(model, "expert-1", resident, Assignment.empty(),
            Duration.ofNanos(GRACE), now::get);

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

    @Test
    void newEpoch_isLoadedThenServed_previousIsServedDuringGrace_thenStaleAndDropped() {
        manager.load("expert-1", 1, List.of(k(0, 0), k(0, 1), k(1, 2)));
        assertThat(manager.checkHeld(1, 0, new int[] {0, 1})).isEqualTo(1);

        LoadResult r = manager.load("expert-1", 2, List.of(k(0, 1), k(2, 3)));
        assertThat(r.epoch()).isEqualTo(2);
        assertThat(r.loadedCount()).isEqualTo(2);
        assertThat(resident.residentExperts()).contains(k(0, 1), k(2, 3), k(0, 0));
        assertThat(manager.checkHeld(2, 2, new int[] {3})).isEqualTo(2);
        assertThatThrownBy(() -> manager.checkHeld(2, 0, new int[] {0})).isInstanceOf(ExpertNotHeldException.class);
        // The previous epoch drains: still served for what it held.
        assertThat(manager.checkHeld(1, 0, new int[] {0})).isEqualTo(2);
        manager.expireDrain();
        assertThat(resident.isResident(k(0, 0))).isTrue();

        now.addAndGet(GRACE);
        assertThatThrownBy(() -> manager.checkHeld(1, 0, new int[] {1}))
                .isInstanceOf(EpochNotServedException.class).hasMessage("stale epoch 1, serving 2");
        manager.expireDrain();
        assertThat(resident.residentExperts()).containsExactly(k(0, 1), k(2, 3));
    }

    @Test
    void secondSwitchWithinGrace_endsTheOlderEpochAtOnce() {
        manager.load("expert-1", 1, List.of(k(0, 0)));
        manager.load("expert-1", 2, List.of(k(0, 1)));
        manager.load("expert-1", 3, List.of(k(0, 2)));
        assertThatThrownBy(() -> manager.checkHeld(1, 0, new int[] {0})).isInstanceOf(EpochNotServedException.class);
        assertThat(manager.checkHeld(2, 0, new int[] {1})).isEqualTo(3);
        assertThat(resident.residentExperts()).containsExactly(k(0, 1), k(0, 2));
    }

    @Test
    void requestEpochZero_skipsTheEpochCheck_butNotTheHeldCheck() {
        manager.load("expert-1", 4, List.of(k(3, 7)));
        assertThat(manager.checkHeld(0, 3, new int[] {7})).isEqualTo(4);
        assertThatThrownBy(() -> manager.checkHeld(0, 3, new int[] {6})).isInstanceOf(ExpertNotHeldException.class);
    }

    @Test
    void requestEpochNewerThanServed_isNotServedYet_ratherThanStale() {
        manager.load("expert-1", 4, List.of(k(3, 7)));
        assertThatThrownBy(() -> manager.checkHeld(5, 3, new int[] {7}))
                .isInstanceOfSatisfying(EpochNotServedException.class, e -> assertThat(e.stale()).isFalse())
                .hasMessage("epoch 5 is not loaded yet, serving 4");
    }

    @Test
    void expertNotHeld_messageNamesLayerExpertInstanceAndEpoch() {
        manager.load("expert-1", 3, List.of(k(2, 4)));
        assertThatThrownBy(() -> manager.checkHeld(3, 2, new int[] {4, 5}))
                .isInstanceOfSatisfying(ExpertNotHeldException.class, e -> {
                    assertThat(e.layer()).isEqualTo(2);
                    assertThat(e.expert()).isEqualTo(5);
                })
                .hasMessage("layer 2 expert 5 is not held by expert-1 (epoch 3)");
    }

    @Test
    void lowerEpoch_isFailedPrecondition() {
        manager.load("expert-1", 3, List.of(k(0, 0)));
        assertThatThrownBy(() -> manager.load("expert-1", 2, List.of(k(0, 0))))
                .isExactlyInstanceOf(EpochNumberRefusedException.class)
                .hasMessageContaining("older than the served epoch 3");
    }

    @Test
    void sameEpochSameExperts_isIdempotent_butDifferentExpertsAreRefused() {
        manager.load("expert-1", 3, List.of(k(0, 0), k(1, 1)));
        assertThat(manager.load("expert-1", 3, List.of(k(1, 1), k(0, 0))).epoch()).isEqualTo(3);
        assertThatThrownBy(() -> manager.load("expert-1", 3, List.of(k(0, 0))))
                .isExactlyInstanceOf(EpochNumberRefusedException.class).hasMessageContaining("different assignment");
    }

    @Test
    void assignmentForAnotherInstance_isFailedPrecondition() {
        assertThatThrownBy(() -> manager.load("expert-2", 1, List.of()))
                .as("about the instance, not the epoch's number").isExactlyInstanceOf(IllegalStateException.class)
                .hasMessageContaining("expert-2").hasMessageContaining("expert-1");
    }

    @Test
    void unknownLayerOrExpert_duplicateOrEpochZero_areInvalidArguments() {
        assertThatThrownBy(() -> manager.load("expert-1", 1, List.of(k(4, 0))))
                .isExactlyInstanceOf(IllegalArgumentException.class).hasMessageContaining("layer 4 does not exist");
        assertThatThrownBy(() -> manager.load("expert-1", 1, List.of(k(0, 8))))
                .isExactlyInstanceOf(IllegalArgumentException.class).hasMessageContaining("layer 0 expert 8 does not exist");
        assertThatThrownBy(() -> manager.load("expert-1", 1, List.of(k(0, 1), k(0, 1))))
                .isExactlyInstanceOf(IllegalArgumentException.class).hasMessageContaining("listed twice");
        assertThatThrownBy(() -> manager.load("expert-1", 0, List.of()))
                .isExactlyInstanceOf(IllegalArgumentException.class).hasMessageContaining(">= 1");
        assertThat(manager.servingEpoch()).isZero();
    }

    @Test
    void assignmentBeyondBudget_isAccepted_theRestIsPagedInOnUse() {
        resident = new ResidentSet(250, k -> new Fake(k, 100));
        manager = new AssignmentManager(model, "expert-1", resident, Assignment.empty(), Duration.ofNanos(GRACE), now::get);
        LoadResult r = manager.load("expert-1", 1, List.of(k(0, 0), k(0, 1), k(0, 2), k(0, 3)));
        assertThat(r.loadedCount()).isEqualTo(2);
        assertThat(r.residentBytes()).isEqualTo(200);
        assertThat(manager.checkHeld(1, 0, new int[] {0, 1, 2, 3})).isEqualTo(1);
    }

    static Stream<Arguments> absurdEpochs() {
        return Stream.of(
                Arguments.of(-1L, "assignment epoch 18446744073709551615 jumps 18446744073709551612 epochs past the "
                        + "served epoch 3, more than moemesh.expert.max-epoch-jump (1000); epoch 3 stays served"),
                Arguments.of(3L + 1_000_000, "assignment epoch 1000003 jumps 1000000 epochs past the served epoch 3, "
                        + "more than moemesh.expert.max-epoch-jump (1000); epoch 3 stays served"),
                Arguments.of(3L + 1001, "assignment epoch 1004 jumps 1001 epochs past the served epoch 3, "
                        + "more than moemesh.expert.max-epoch-jump (1000); epoch 3 stays served"));
    }

    @ParameterizedTest
    @MethodSource("absurdEpochs")
    void epochJumpingFurtherThanTheLimit_isFailedPrecondition_andTheServedEpochStays(long epoch, String message) {
        manager = new AssignmentManager(model, "expert-1", resident, Assignment.empty(), Duration.ofNanos(GRACE), 1000,
                now::get);
        manager.load("expert-1", 3, List.of(k(0, 0)));
        assertThatThrownBy(() -> manager.load("expert-1", epoch, List.of(k(0, 1))))
                .isExactlyInstanceOf(EpochNumberRefusedException.class).hasMessage(message);
        assertThat(manager.servingEpoch()).isEqualTo(3);
        assertThat(manager.checkHeld(3, 0, new int[] {0})).isEqualTo(3);
        assertThat(resident.residentExperts()).containsExactly(k(0, 0));

        assertThat(manager.load("expert-1", 3 + 1000, List.of(k(0, 1))).epoch()).as("a jump of exactly the limit")
                .isEqualTo(1003);
    }

    @Test
    void firstEpoch_mayBeAnythingBelow2pow63_butNotBeyond() {
        assertThatThrownBy(() -> manager.load("expert-1", Long.MIN_VALUE, List.of(k(0, 0))))
                .isExactlyInstanceOf(EpochNumberRefusedException.class)
                .hasMessage("assignment epoch 9223372036854775808 is not below 2^63: no placement gets there, and none "
                        + "could follow it; epoch 0 stays served");
        assertThat(manager.servingEpoch()).isZero();
        assertThat(manager.load("expert-1", 5_000_000, List.of(k(0, 0))).epoch()).as("a router that ran for long")
                .isEqualTo(5_000_000);
    }

    static Stream<Arguments> loadErrors() {
        return Stream.of(
                // what MemorySegment.load throws on a mapped weights file truncated under it
                Arguments.of(new InternalError("a fault occurred in an unsafe memory access operation")),
                Arguments.of(new OutOfMemoryError("Java heap space")));
    }

    /**
     * A load that fails with an Error, not an exception, still rolls the resident set's filter back to what was
     * answered before: a filter left widened would keep admitting (and loading) the failed epoch's experts. The Error
     * goes on to the caller (ExpertGrpcService answers INTERNAL; an OutOfMemoryError ends the service).
     */
    @ParameterizedTest
    @MethodSource("loadErrors")
    void prepareWhoseLoadFailsWithAnError_admitsNoExpertOfTheFailedEpoch_andRethrowsIt(Error failure) {
        resident = new ResidentSet(10_000, k -> {
            if (k.equals(k(0, 2))) {
                throw failure;
            }
            return new Fake(k, 100);
        });
        manager = new AssignmentManager(model, "expert-1", resident, Assignment.empty(), Duration.ofNanos(GRACE),
                now::get);
        manager.load("expert-1", 1, List.of(k(0, 0)));

        assertThatThrownBy(() -> manager.prepare("expert-1", 2, List.of(k(0, 1), k(0, 2)))).isSameAs(failure);

        assertThat(manager.preparedEpoch()).isZero();
        assertThat(resident.residentExperts()).containsExactly(k(0, 0));
        resident.acquire(k(0, 1)); // a batch at epoch 0 that uses it: loaded for the call, not kept
        assertThat(resident.isResident(k(0, 1))).as("an expert no epoch holds").isFalse();
        assertThatThrownBy(() -> manager.checkHeld(2, 0, new int[] {1})).isInstanceOf(EpochNotServedException.class);
    }
}
