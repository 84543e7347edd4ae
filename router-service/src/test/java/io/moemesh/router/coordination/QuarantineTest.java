package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.proto.router.v1.Instance;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** Which instances the router leaves out of its placements, and for how long, on a clock the test moves. */
class QuarantineTest {
    static final Instance A = Instance.newBuilder().setId("a").build();
    static final Instance B = Instance.newBuilder().setId("b").build();
    final AtomicLong now = new AtomicLong();
    final AtomicInteger changes = new AtomicInteger();
    final Quarantine quarantine = new Quarantine(2, Duration.ofSeconds(30), Duration.ofSeconds(100), now::get);

    {
        quarantine.enable();
        quarantine.onChange(changes::incrementAndGet);
    }

    void advance(Duration d) {
        now.addAndGet(d.toNanos());
    }

    @Test
    void twoFailuresInARow_leaveAnInstanceOut_forTheFirstQuarantine_thenItIsTriedAgain() {
        quarantine.failed(Map.of("b", "PREPARE of epoch 2: UNAVAILABLE"));
        assertThat(quarantine.admit(List.of(A, B))).containsExactly(A, B);
        quarantine.failed(Map.of("b", "PREPARE of epoch 2: DEADLINE_EXCEEDED"));
        assertThat(quarantine.admit(List.of(A, B))).containsExactly(A);
        assertThat(changes).hasValue(1);
        assertThat(quarantine.quarantined()).containsExactly(new Quarantine.Quarantined("b", 2, Duration.ofSeconds(30),
                "PREPARE of epoch 2: DEADLINE_EXCEEDED"));
        assertThat(quarantine.nextRelease(Set.of("a", "b"))).isEqualTo(Duration.ofSeconds(30));
        advance(Duration.ofSeconds(30));
        assertThat(quarantine.admit(List.of(A, B))).containsExactly(A, B);
        assertThat(quarantine.nextRelease(Set.of("a", "b"))).isNull();
    }

    @Test
    void aFailureAfterAQuarantine_quarantinesAgainAtOnce_twiceAsLong_upToTheMost() {
        quarantine.failed(Map.of("b", "x"));
        quarantine.failed(Map.of("b", "x"));
        advance(Duration.ofSeconds(30));
        quarantine.failed(Map.of("b", "x"));
        assertThat(quarantine.nextRelease(Set.of("b"))).isEqualTo(Duration.ofSeconds(60));
        advance(Duration.ofSeconds(60));
        quarantine.failed(Map.of("b", "x"));
        assertThat(quarantine.nextRelease(Set.of("b"))).isEqualTo(Duration.ofSeconds(100));
    }

    @Test
    void aPublishedEpochWithTheInstance_endsItsRecord_andOneThatLeftTheSetIsForgotten() {
        quarantine.failed(Map.of("a", "x", "b", "x"));
        quarantine.placed(List.of("a"));
        quarantine.retain(Set.of("a"));
        quarantine.failed(Map.of("a", "x", "b", "x"));
        assertThat(quarantine.admit(List.of(A, B))).containsExactly(A, B);
        assertThat(quarantine.size()).isZero();
    }

    @Test
    void aSetWhoseInstancesAreAllQuarantined_isAdmittedWhole() {
        quarantine.failed(Map.of("a", "x", "b", "x"));
        quarantine.failed(Map.of("a", "x", "b", "x"));
        assertThat(quarantine.size()).isEqualTo(2);
        assertThat(quarantine.admit(List.of(A, B))).containsExactly(A, B);
    }

    @Test
    void strikes_countOneFailingPodOfTwo_butNotAnAttemptMoreThanHalfOfThreeOrMoreFailed() {
        Map<String, String> one = Map.of("b", "PREPARE of epoch 2: UNAVAILABLE");
        assertThat(Quarantine.strikes(one, 1, 2)).isEqualTo(one);
        assertThat(Quarantine.strikes(one, 1, 1)).isEqualTo(one);
        assertThat(Quarantine.strikes(Map.of("a", "x", "b", "y"), 2, 4)).hasSize(2);
        assertThat(Quarantine.strikes(Map.of("a", "x", "b", "y"), 2, 3)).isEmpty();
    }

    @Test
    void refusesTheEpoch_onlyForEpochNumberRefusals_notForAnAssignmentMeantForAnotherInstance() {
        assertThat(Quarantine.refusesTheEpoch(new InstanceRefusedException("FAILED_PRECONDITION assignment epoch 9 "
                + "jumps 8 epochs past the served epoch 1, more than moemesh.expert.max-epoch-jump (4)", null))).isTrue();
        assertThat(Quarantine.refusesTheEpoch(new InstanceRefusedException("FAILED_PRECONDITION assignment epoch 2 "
                + "is older than the served epoch 3", null))).isTrue();
        assertThat(Quarantine.refusesTheEpoch(new InstanceRefusedException("FAILED_PRECONDITION epoch 3 is already "
                + "served with a different assignment (4 experts); a new assignment needs a new epoch", null))).isTrue();
        assertThat(Quarantine.refusesTheEpoch(new InstanceRefusedException("FAILED_PRECONDITION assignment is for "
                + "instance \"expert-1\", this is expert-7", null))).isFalse();
        assertThat(Quarantine.refusesTheEpoch(new IllegalStateException("UNAVAILABLE assignment epoch 2 is older "
                + "than the served epoch 3"))).isFalse();
    }
}
