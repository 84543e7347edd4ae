package io.moemesh.expert.assignment;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.LoadedExpert;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

/**
 * Random sequences of LoadAssignment stages (UNSPECIFIED, PREPARE, COMMIT, ABORT at epochs around the served one,
 * with random assignments), drain expiries and clock steps, checked against the rules of expert.proto after every
 * move: a call is accepted exactly when the rules say so and a refused one changes nothing; the served epoch only
 * grows; a request at epoch N for an expert of N is answered while N is served, prepared or in its grace, and
 * requests at any other epoch are refused; the resident set is exactly what is answered for (the budget holds all).
 */
class TwoPhaseSwitchPropertyTest {
    private static final long GRACE = 10;
    private static final long MAX_JUMP = 3;
    private static final int EXPERTS = 5; // layer 0, experts 0..4
    private static ExpertModel model;

    private record Fake(ExpertKey key, long byteSize) implements LoadedExpert {
    }

    /** What the rules say the instance answers for. */
    private static final class Expected {
        long served;
        Set<ExpertKey> servedSet = Set.of();
        long prepared;
        Set<ExpertKey> preparedSet = Set.of();
        long previous;
        Set<ExpertKey> previousSet = Set.of();
        long deadline;

        boolean inGrace(long now) {
            return previous != 0 && now - deadline < 0;
        }
    }

    @BeforeContainer
    static void open() {
        model = ExpertModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterContainer
    static void close() {
        model.close();
    }

    @Property(tries = 300)
    void anySequenceOfStages_keepsTheEpochRules(@ForAll long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        AtomicLong now = new AtomicLong(r.nextLong());
        ResidentSet resident = new ResidentSet(1_000_000, k -> new Fake(k, 100));
        AssignmentManager m = new AssignmentManager(model, "e", resident, Assignment.empty(), Duration.ofNanos(GRACE),
                MAX_JUMP, now::get);
        Expected x = new Expected();
        for (int move = 0; move < 60; move++) {
            long servedBefore = m.servingEpoch();
            long epoch = Math.max(1, x.served + r.nextInt(-1, (int) MAX_JUMP + 2));
            Set<ExpertKey> experts = randomExperts(r);
            int what = r.nextInt(8);
            switch (what) {
                case 0, 1 -> call(m, x, acceptsPrepare(x, epoch, experts),
                        () -> m.prepare("e", epoch, List.copyOf(experts)), () -> prepare(x, epoch, experts));
                case 2 -> call(m, x, acceptsPrepare(x, epoch, experts), () -> m.load("e", epoch, List.copyOf(experts)),
                        () -> {
                            prepare(x, epoch, experts);
                            commit(x, epoch, now.get());
                        });
                case 3, 4 -> {
                    // Mostly the prepared epoch, as a placer would.
                    long e = x.prepared != 0 && r.nextBoolean() ? x.prepared : epoch;
                    call(m, x, e == x.served || e == x.prepared, () -> m.commit("e", e), () -> commit(x, e, now.get()));
                }
                case 5 -> {
                    long e = x.prepared != 0 && r.nextBoolean() ? x.prepared : epoch;
                    call(m, x, e != x.served, () -> m.abort("e", e), () -> {
                        if (e == x.prepared) {
                            x.prepared = 0;
                            x.preparedSet = Set.of();
                        }
                    });
                }
                case 6 -> now.addAndGet(r.nextInt(0, (int) GRACE + 2));
                default -> m.expireDrain();
            }
            assertThat(Long.compareUnsigned(m.servingEpoch(), servedBefore)).as("the served epoch only grows")
                    .isGreaterThanOrEqualTo(0);
            assertThat(m.servingEpoch()).isEqualTo(x.served);
            assertThat(m.preparedEpoch()).isEqualTo(x.prepared);
            assertAnswers(m, x, now.get());
            m.expireDrain();
            Set<ExpertKey> answered = new TreeSet<>(x.servedSet);
            answered.addAll(x.preparedSet);
            if (x.inGrace(now.get())) {
                answered.addAll(x.previousSet);
            }
            assertThat(resident.residentExperts()).as("resident = what is answered for").containsExactlyElementsOf(answered);
        }
    }

    private static Set<ExpertKey> randomExperts(SplittableRandom r) {
        Set<ExpertKey> s = new TreeSet<>();
        for (int e = 0; e < EXPERTS; e++) {
            if (r.nextInt(3) == 0) {
                s.add(new ExpertKey(0, e));
            }
        }
        return s;
    }

    /** PREPARE (and UNSPECIFIED) per expert.proto. */
    private static boolean acceptsPrepare(Expected x, long epoch, Set<ExpertKey> experts) {
        if (epoch == x.served) {
            return experts.equals(x.servedSet);
        }
        if (epoch < x.served || (x.served != 0 && epoch - x.served > MAX_JUMP)) {
            return false;
        }
        return x.prepared == 0 || epoch > x.prepared || (epoch == x.prepared && experts.equals(x.preparedSet));
    }

    private static void prepare(Expected x, long epoch, Set<ExpertKey> experts) {
        if (epoch != x.served) {
            x.prepared = epoch;
            x.preparedSet = experts;
        }
    }

    private static void commit(Expected x, long epoch, long now) {
        if (epoch != x.served) {
            x.previous = x.served;
            x.previousSet = x.servedSet;
            x.deadline = now + GRACE;
            x.served = x.prepared;
            x.servedSet = x.preparedSet;
            x.prepared = 0;
            x.preparedSet = Set.of();
        }
    }

    private static void call(AssignmentManager m, Expected x, boolean accepted, Runnable call, Runnable onSuccess) {
        long served = m.servingEpoch();
        long prepared = m.preparedEpoch();
        if (accepted) {
            assertThatCode(call::run).doesNotThrowAnyException();
            onSuccess.run();
        } else {
            assertThatThrownBy(call::run).isInstanceOf(IllegalStateException.class);
            assertThat(m.servingEpoch()).isEqualTo(served);
            assertThat(m.preparedEpoch()).isEqualTo(prepared);
        }
    }

    private static void assertAnswers(AssignmentManager m, Expected x, long now) {
        List<Long> epochs = new ArrayList<>();
        for (long e = Math.max(1, x.served - 3); e <= x.served + MAX_JUMP + 2; e++) {
            epochs.add(e);
        }
        for (long e : epochs) {
            Set<ExpertKey> held;
            if (e == x.served && e != 0) {
                held = x.servedSet;
            } else if (e == x.prepared && e != 0) {
                held = x.preparedSet;
            } else if (x.inGrace(now) && e >= x.previous && e < x.served) {
                held = x.previousSet;
            } else {
                long epoch = e;
                assertThatThrownBy(() -> m.heldFor(epoch)).as("epoch %d is not answered", e)
                        .isInstanceOf(EpochNotServedException.class);
                continue;
            }
            for (int ex = 0; ex < EXPERTS; ex++) {
                ExpertKey k = new ExpertKey(0, ex);
                if (held.contains(k)) {
                    assertThat(m.checkHeld(e, 0, new int[] {ex})).as("epoch %d expert %d", e, ex).isEqualTo(x.served);
                } else {
                    long epoch = e;
                    int expert = ex;
                    assertThatThrownBy(() -> m.checkHeld(epoch, 0, new int[] {expert}))
                            .isInstanceOf(ExpertNotHeldException.class);
                }
            }
        }
        Set<ExpertKey> any = new HashSet<>(x.servedSet);
        any.addAll(x.preparedSet);
        if (x.inGrace(now)) {
            any.addAll(x.previousSet);
        }
        for (ExpertKey k : any) {
            assertThat(m.heldFor(0).test(k)).as("epoch 0: %s", k).isTrue();
        }
    }
}
