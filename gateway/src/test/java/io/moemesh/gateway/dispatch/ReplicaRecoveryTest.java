package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

import io.github.resilience4j.circuitbreaker.CircuitBreaker.State;
import io.moemesh.gateway.dispatch.MeshExpertDispatchTest.Mesh;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.engine.LookaheadObserver;
import io.moemesh.model.engine.MicroBatching;
import io.moemesh.model.engine.RemoteAttention;
import io.moemesh.model.engine.RouteObserver;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.InstanceHealth;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A replica that failed comes back: the real Resilience4j breaker of {@link ResilientInstance} goes
 * CLOSED → OPEN (after its minimum number of calls) → HALF_OPEN (by itself after the wait, or at once when the
 * instance's health turns SERVING) → CLOSED after one successful probe, and the dispatcher routes tokens to the
 * instance again, every step giving the reference engine's logits. An instance whose health says it is down is
 * skipped without a call.
 */
class ReplicaRecoveryTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final GoldenCase CASE = GoldenCase.load(MODEL).getFirst();

    /**
     * One traced prompt pass through the mesh; its logits must be the reference's whatever the replicas do.
     * Returns where its rows went.
     */
    private static PromptDispatch goldenStep(Mesh mesh) {
        StepOutput out = mesh.model().engine(mesh.dispatch()).step(List.of(new SequenceStep(1, CASE.inputIds(), 0,
                SequenceStep.Logits.LAST, true)), mesh.model().newCache(128)).getFirst();
        assertThat(out.logits()).containsExactly(CASE.lastLogits(), within(1e-4f));
        return mesh.dispatch().traces().take(1);
    }

    private static boolean routedTo(PromptDispatch step, String id) {
        assertThat(step.layers()).as("a traced step is recorded").isNotEmpty();
        return step.layers().stream()
                .anyMatch(r -> r.instances().stream().anyMatch(s -> s.instanceId().equals(id)));
    }

    /**
     * Steps with the instance failing until its breaker opens (3 calls is the breaker's minimum). With a short
     * open wait the breaker may already have moved on to HALF_OPEN when this returns.
     */
    private static void failUntilOpen(Mesh mesh, String id) {
        mesh.instances().get(id).down.set(true);
        for (int i = 0; i < 20 && mesh.resilient(id).state() == State.CLOSED; i++) {
            goldenStep(mesh);
        }
        assertThat(mesh.resilient(id).state()).isIn(State.OPEN, State.HALF_OPEN);
        assertThat(mesh.instances().get(id).attempts.get()).isGreaterThanOrEqualTo(3);
    }

    @Test
    void breaker_opensAfterFailures_halfOpensByItselfAfterTheWait_closesOnASuccessfulProbe_andTheInstanceServesAgain() {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 3, 2, Duration.ofMillis(200), Duration.ofSeconds(10));
        InProcessInstance one = mesh.instances().get("expert-1");
        PromptDispatch step = goldenStep(mesh);
        assertThat(routedTo(step, "expert-1")).as("expert-1 carries tokens while healthy").isTrue();

        failUntilOpen(mesh, "expert-1");
        one.down.set(false);
        int attempts = one.attempts.get();
        await("HALF_OPEN without any caller asking").until(() -> mesh.resilient("expert-1").state() == State.HALF_OPEN);
        assertThat(one.attempts.get()).as("no call while OPEN").isEqualTo(attempts);
        assertThat(mesh.resilient("expert-1").available()).isTrue();

        step = goldenStep(mesh);
        assertThat(mesh.resilient("expert-1").state()).isEqualTo(State.CLOSED);
        assertThat(routedTo(step, "expert-1")).as("expert-1 carries tokens again").isTrue();
    }

    @Test
    void openBreaker_routesNothingToTheInstance_untilTheWaitEnds() {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 3, 2, Duration.ofMinutes(5), Duration.ofSeconds(10));
        failUntilOpen(mesh, "expert-1");
        assertThat(mesh.resilient("expert-1").state()).isEqualTo(State.OPEN);
        int attempts = mesh.instances().get("expert-1").attempts.get();
        goldenStep(mesh);
        PromptDispatch step = goldenStep(mesh);
        assertThat(mesh.instances().get("expert-1").attempts.get()).isEqualTo(attempts);
        assertThat(routedTo(step, "expert-1")).isFalse();
    }

    @ParameterizedTest
    @EnumSource(value = InstanceHealth.class, names = {"NOT_SERVING", "UNREACHABLE"})
    void healthDown_instanceSkipped_withoutAFailedCall(InstanceHealth down) {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 3, 2, Duration.ofMinutes(5), Duration.ofSeconds(10));
        InProcessInstance one = mesh.instances().get("expert-1");
        one.health(down);
        assertThat(mesh.resilient("expert-1").available()).isFalse();
        goldenStep(mesh);
        PromptDispatch step = goldenStep(mesh);
        assertThat(one.attempts.get()).isZero();
        assertThat(routedTo(step, "expert-1")).isFalse();
        assertThat(mesh.resilient("expert-1").state()).isEqualTo(State.CLOSED);

        one.health(InstanceHealth.SERVING);
        step = goldenStep(mesh);
        assertThat(routedTo(step, "expert-1")).isTrue();
    }

    @Test
    void healthTurnsServing_openBreakerHalfOpensAtOnce_andTheNextStepUsesTheInstance() {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 3, 2, Duration.ofMinutes(5), Duration.ofSeconds(10));
        InProcessInstance one = mesh.instances().get("expert-1");
        failUntilOpen(mesh, "expert-1");
        one.health(InstanceHealth.UNREACHABLE);
        one.down.set(false);
        one.health(InstanceHealth.SERVING);
        assertThat(mesh.resilient("expert-1").state()).isEqualTo(State.HALF_OPEN);

        PromptDispatch step = goldenStep(mesh);
        assertThat(mesh.resilient("expert-1").state()).isEqualTo(State.CLOSED);
        assertThat(routedTo(step, "expert-1")).isTrue();
    }

    @Test
    void failingProbe_retriedOnAnotherReplica_sameLogits_andTheBreakerOpensAgain() {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 3, 2, Duration.ofMinutes(5), Duration.ofSeconds(10));
        InProcessInstance one = mesh.instances().get("expert-1");
        failUntilOpen(mesh, "expert-1");
        one.health(InstanceHealth.UNREACHABLE);
        one.health(InstanceHealth.SERVING);
        int attempts = one.attempts.get();

        PromptDispatch step = goldenStep(mesh);
        assertThat(one.attempts.get()).as("the probe").isEqualTo(attempts + 1);
        assertThat(mesh.resilient("expert-1").state()).isEqualTo(State.OPEN);
        assertThat(routedTo(step, "expert-1")).isFalse();
    }

    @Test
    void probeThatNeverAnswers_givesUpAtHalfTheStepDeadline_andTheStepCompletesOnAnotherReplica() {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 3, 2, Duration.ofMinutes(5), Duration.ofSeconds(4));
        InProcessInstance one = mesh.instances().get("expert-1");
        failUntilOpen(mesh, "expert-1");
        one.down.set(false);
        one.hang.set(true);
        one.health(InstanceHealth.UNREACHABLE);
        one.health(InstanceHealth.SERVING);

        goldenStep(mesh);
        assertThat(one.unanswered).hasSize(1).allSatisfy(f -> assertThat(f).isCancelled());
        assertThat(mesh.resilient("expert-1").state()).isEqualTo(State.OPEN);
    }

    /**
     * The only replica of every expert half-open (just restarted): its probe is not cut at half the step deadline,
     * which would leave its pairs nowhere to go and fail the request with half the deadline unused. Answering at 0.6 ×
     * the deadline, it computes the step, which gives the reference logits, and its breaker closes.
     */
    @Test
    void probeOfTheOnlyReplica_answeringAfterHalfTheStepDeadline_completesTheStep() {
        Duration deadline = Duration.ofSeconds(2);
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 1, 1, Duration.ofMinutes(5), deadline);
        InProcessInstance only = mesh.instances().get("expert-0");
        ResilientInstance breaker = mesh.resilient("expert-0");
        only.down.set(true);
        ExpertCall c = new ExpertCall(1, 0, new float[4], 1, 4, new int[] {1}, new int[] {0}, new float[] {1});
        for (int i = 0; i < 3; i++) {
            assertThat(breaker.call(c)).isCompletedExceptionally();
        }
        only.down.set(false);
        only.health(InstanceHealth.UNREACHABLE);
        only.health(InstanceHealth.SERVING);
        assertThat(breaker.state()).isEqualTo(State.HALF_OPEN);
        only.nextAnswerAfter.set(deadline.multipliedBy(6).dividedBy(10));

        goldenStep(mesh);

        assertThat(only.nextAnswerAfter.get()).as("the probe was the late call").isNull();
        assertThat(breaker.state()).isEqualTo(State.CLOSED);
    }

    /**
     * Ping-pong with the only replica half-open: micro-batch 0's layer-0 call is the probe, and micro-batch 1's call
     * is refused by the breaker (one probe at a time) while the probe's answer is held back until it was sent. The
     * refusal is not the instance's failure: micro-batch 1's call goes again once the probe answered, the step gives
     * the reference logits, and the breaker closes.
     */
    @Test
    void probeInFlight_theOtherMicroBatchWaitsForItsAnswer_insteadOfFailingTheStep() {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 1, 1, Duration.ofMinutes(5), Duration.ofSeconds(10));
        InProcessInstance only = mesh.instances().get("expert-0");
        ResilientInstance breaker = mesh.resilient("expert-0");
        only.down.set(true);
        ExpertCall c = new ExpertCall(1, 0, new float[4], 1, 4, new int[] {1}, new int[] {0}, new float[] {1});
        for (int i = 0; i < 3; i++) {
            assertThat(breaker.call(c)).isCompletedExceptionally();
        }
        assertThat(breaker.state()).isEqualTo(State.OPEN);
        only.down.set(false);
        only.health(InstanceHealth.UNREACHABLE);
        only.health(InstanceHealth.SERVING);
        assertThat(breaker.state()).isEqualTo(State.HALF_OPEN);

        CountDownLatch probeAnswer = new CountDownLatch(1);
        only.hold.set(probeAnswer);
        AtomicInteger starts = new AtomicInteger();
        ExpertDispatch signalling = new ExpertDispatch() {
            @Override
            public void run(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairs,
                            float[] out) {
                mesh.dispatch().run(step, layer, x, experts, weights, pairs, out);
            }

            @Override
            public Pending start(StepContext step, int layer, float[] x, int[] experts, float[] weights, int pairs,
                                 float[] out) {
                Pending p = mesh.dispatch().start(step, layer, x, experts, weights, pairs, out);
                if (starts.incrementAndGet() == 2) {
                    // Micro-batch 1's layer-0 call went out while the probe is in flight: the probe may answer.
                    only.hold.set(null);
                    probeAnswer.countDown();
                }
                return p;
            }
        };
        var cfg = mesh.model().config();
        Engine engine = new Engine(cfg, mesh.model().denseWeights(), signalling, RouteObserver.NONE,
                LookaheadObserver.NONE, RemoteAttention.NONE, new MicroBatching(2, 2));
        List<GoldenCase> cases = GoldenCase.load(MODEL).subList(0, 2);
        List<StepOutput> outs = engine.step(List.of(
                new SequenceStep(1, cases.get(0).inputIds(), 0, SequenceStep.Logits.LAST, false),
                new SequenceStep(2, cases.get(1).inputIds(), 0, SequenceStep.Logits.LAST, false)),
                mesh.model().newCache(256));

        assertThat(engine.expertWaits().calls()).as("two micro-batches per layer")
                .isEqualTo(2L * cfg.numLayers());
        for (int i = 0; i < 2; i++) {
            assertThat(outs.get(i).logits()).as(cases.get(i).prompt()).containsExactly(cases.get(i).lastLogits(),
                    within(1e-4f));
        }
        assertThat(breaker.state()).isEqualTo(State.CLOSED);
    }

    @Test
    void cancelledCall_countsAsAFailure_andFreesItsBulkheadSlot() {
        InProcessInstance wedged = new InProcessInstance("expert-9", null);
        wedged.hang.set(true);
        ResilientInstance r = new ResilientInstance(wedged, 1, 50, Duration.ofMinutes(5));
        ExpertCall c = new ExpertCall(1, 0, new float[4], 1, 4, new int[] {1}, new int[] {0}, new float[] {1});
        for (int i = 0; i < 3; i++) {
            CompletableFuture<float[]> f = r.call(c);
            // With one slot, a second call is only let through because the cancelled one gave its slot back.
            assertThat(wedged.attempts.get()).isEqualTo(i + 1);
            f.cancel(false);
        }
        assertThat(wedged.unanswered).allSatisfy(f -> assertThat(f).isCancelled());
        assertThat(r.state()).as("3 failed calls of 3").isEqualTo(State.OPEN);
        assertThat(r.call(c)).isCompletedExceptionally();
        assertThat(wedged.attempts.get()).isEqualTo(3);
    }

    /**
     * The gateway stays on epoch 1 while the instances serve only epoch 2 (it could not apply the new epoch within
     * drain-grace): every call is refused STALE_EPOCH and every step fails, but that is the gateway's fault, not the
     * instances': no breaker opens, so once epoch 2 applies (same instances, same endpoints: same clients and
     * breakers) every expert has a usable replica and the next step succeeds at once.
     */
    @Test
    void staleEpochRefusals_openNoBreaker_andTheStepAfterTheNewEpochApplies_succeeds() {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 2, 2, Duration.ofMinutes(5), Duration.ofSeconds(10));
        mesh.instances().values().forEach(i -> i.servingEpoch.set(2));
        for (int i = 0; i < 3; i++) {
            assertThatThrownBy(() -> goldenStep(mesh)).isInstanceOf(ExpertUnavailableException.class)
                    .hasMessageContaining("has no healthy replica");
        }
        assertThat(mesh.instances().values()).allSatisfy(i -> assertThat(i.attempts.get()).isEqualTo(3));
        assertThat(mesh.dispatch().instances()).allSatisfy(r -> assertThat(r.state()).isEqualTo(State.CLOSED));

        var c = mesh.model().config();
        mesh.dispatch().usePlacement(PlacementTable.of(EvenPlacement.build(2, mesh.table().instances(), c.numLayers(),
                c.numExperts(), c.hasSharedExpert(), 2), c.numLayers(), c.dispatchableExperts()));

        assertThat(mesh.dispatch().epoch()).isEqualTo(2);
        assertThat(mesh.dispatch().missingExperts()).isEmpty();
        goldenStep(mesh);
    }

    @Test
    void missingExperts_namesEveryExpertWhoseReplicasAreAllUnusable() {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 3, 2, Duration.ofMinutes(5), Duration.ofSeconds(10));
        assertThat(mesh.dispatch().missingExperts()).isEmpty();
        mesh.instances().get("expert-0").health(InstanceHealth.NOT_SERVING);
        assertThat(mesh.dispatch().missingExperts()).as("every expert has another replica").isEmpty();

        mesh.instances().get("expert-1").health(InstanceHealth.UNREACHABLE);
        List<MeshExpertDispatch.MissingExpert> missing = mesh.dispatch().missingExperts();
        assertThat(missing).isNotEmpty().allSatisfy(m -> {
            assertThat(m.placedOn()).containsExactlyInAnyOrder("expert-0", "expert-1");
            assertThat(m.toString()).matches("layer \\d+ expert \\d+ \\(placed on expert-\\d, expert-\\d\\)");
        });
        Set<Integer> down = Set.of(mesh.table().instanceIndex("expert-0"), mesh.table().instanceIndex("expert-1"));
        long expected = Arrays.stream(mesh.table().holders()).flatMap(Arrays::stream)
                .filter(h -> Arrays.stream(h).allMatch(down::contains)).count();
        assertThat(missing).hasSize((int) expected);

        mesh.instances().get("expert-1").health(InstanceHealth.SERVING);
        assertThat(mesh.dispatch().missingExperts()).isEmpty();
    }
}
