package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

import io.github.resilience4j.circuitbreaker.CircuitBreaker.State;
import io.moemesh.gateway.dispatch.MeshExpertDispatchTest.Mesh;
import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.PlacementTable;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Hedged calls ({@link LayerCalls}): a call still unanswered after its hedge delay (half the time its step had left) is
 * sent to another replica too, and the first reply computes its pairs. An instance wedged while connected (its health
 * SERVING, its breaker CLOSED) then costs a step one hedge delay instead of the step; a slow instance with no other
 * replica still answers within the deadline; replicas slow at once get no hedges on top; when both replicas answer a
 * hedged pair, it is summed once. The fakes' latches order the replies; the step deadlines leave seconds of slack.
 */
class HedgedCallTest {
    private static final String MODEL = TestModels.MIXTRAL;
    private static final GoldenCase CASE = GoldenCase.load(MODEL).getFirst();

    private static StepOutput prefill(Mesh mesh) {
        return mesh.model().engine(mesh.dispatch()).step(List.of(new SequenceStep(1, CASE.inputIds(), 0,
                SequenceStep.Logits.LAST, true)), mesh.model().newCache(128)).getFirst();
    }

    private static boolean routedTo(PromptDispatch step, String id) {
        assertThat(step.layers()).as("a traced step is recorded").isNotEmpty();
        return step.layers().stream()
                .anyMatch(r -> r.instances().stream().anyMatch(s -> s.instanceId().equals(id)));
    }

    @Test
    void wedgedReplicaWithAClosedBreaker_itsPairsAreHedgedToTheOtherReplica_andTheStepGivesTheReferenceLogits() {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 2, 2, Duration.ofMinutes(5), Duration.ofSeconds(2));
        InProcessInstance wedged = mesh.instances().get("expert-0");
        wedged.hang.set(true);
        assertThat(mesh.resilient("expert-0").state()).isEqualTo(State.CLOSED);

        assertThat(prefill(mesh).logits()).containsExactly(CASE.lastLogits(), within(1e-4f));

        assertThat(wedged.attempts.get()).as("layer 0 sent expert-0 its share").isPositive();
        assertThat(routedTo(mesh.dispatch().traces().take(1), "expert-0")).as("every pair computed by expert-1")
                .isFalse();
        assertThat(wedged.unanswered).as("nothing left in flight once the step is done")
                .allSatisfy(f -> assertThat(f).isCancelled());
    }

    @Test
    void slowInstanceWithNoOtherReplica_answeringAfterItsHedgeDelay_stillComputesTheStep() throws Exception {
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 2, 1, Duration.ofMinutes(5), Duration.ofSeconds(4));
        InProcessInstance slow = mesh.instances().get("expert-0");
        ResilientInstance breaker = mesh.resilient("expert-0");
        CountDownLatch answer = new CountDownLatch(1);
        slow.hold.set(answer);
        CompletableFuture<Void> released = CompletableFuture.runAsync(() -> {
            await("expert-0's call missed its hedge delay").atMost(Duration.ofSeconds(30)).until(breaker::lagging);
            answer.countDown();
        });

        assertThat(prefill(mesh).logits()).containsExactly(CASE.lastLogits(), within(1e-4f));

        released.get(30, TimeUnit.SECONDS);
        assertThat(routedTo(mesh.dispatch().traces().take(1), "expert-0")).isTrue();
        assertThat(slow.attempts.get()).as("no call given up, none sent again").isEqualTo(slow.calls.get());
        assertThat(breaker.state()).isEqualTo(State.CLOSED);
        assertThat(breaker.lagging()).as("it answered").isFalse();
    }

    /**
     * Both replicas of a mesh are slow at once (a long prompt chunk on cores they share): neither gets the other's
     * work on top as a hedge, and both answer within the deadline, as without hedging.
     */
    @Test
    void everyReplicaSlowAtOnce_noneIsHedgedToAnother_andTheStepIsAsWithoutHedging() throws Exception {
        Mesh plain = MeshExpertDispatchTest.mesh(MODEL, 2, 2, Duration.ofMinutes(5), Duration.ofSeconds(4));
        float[] unhedged = prefill(plain).logits();
        Mesh mesh = MeshExpertDispatchTest.mesh(MODEL, 2, 2, Duration.ofMinutes(5), Duration.ofSeconds(4));
        CountDownLatch answer = new CountDownLatch(1);
        mesh.instances().values().forEach(i -> i.hold.set(answer));
        CompletableFuture<Void> released = CompletableFuture.runAsync(() -> {
            await("both missed their hedge delay").atMost(Duration.ofSeconds(30)).until(() ->
                    mesh.resilient("expert-0").lagging() && mesh.resilient("expert-1").lagging());
            answer.countDown();
        });

        float[] logits = prefill(mesh).logits();

        released.get(30, TimeUnit.SECONDS);
        assertThat(logits).containsExactly(unhedged);
        for (String id : List.of("expert-0", "expert-1")) {
            assertThat(mesh.instances().get(id).attempts.get()).as(id + ": no hedge, no retry")
                    .isEqualTo(plain.instances().get(id).attempts.get());
            assertThat(mesh.resilient(id).state()).isEqualTo(State.CLOSED);
        }
    }

    /** Three instances and a dispatch over them; layer 0's experts 0 and 1 live where {@code layer0} says. */
    private record ThreeInstances(MoeModel model, Map<String, InProcessInstance> instances, DispatchTraces traces,
            MeshExpertDispatch dispatch, Map<String, CountDownLatch> answers) implements AutoCloseable {

        static ThreeInstances of(List<String> expert0On, List<String> expert1On) throws Exception {
            MoeModel model = MoeModel.open(TestModels.dir(MODEL));
            ModelConfig c = model.config();
            Map<String, InProcessInstance> instances = new HashMap<>();
            DispatchTraces traces = new DispatchTraces(c.numLayers(), 8);
            MeshExpertDispatch dispatch = new MeshExpertDispatch(c.hiddenSize(), in -> {
                InProcessInstance i = new InProcessInstance(in.getId(), model);
                instances.put(in.getId(), i);
                return new ResilientInstance(i, 8, 50, Duration.ofMinutes(5));
            }, Duration.ofSeconds(4), ReplicaPicker.PREFER_VISITED, traces);
            Placement.Builder p = Placement.newBuilder().setEpoch(1);
            for (int i = 0; i < 3; i++) {
                p.addInstances(Instance.newBuilder().setId("expert-" + i).setEndpoint("127.0.0.1:" + (9100 + i)));
            }
            for (int l = 0; l < c.numLayers(); l++) {
                LayerPlacement.Builder lp = LayerPlacement.newBuilder().setLayer(l);
                for (int e = 0; e < c.numExperts(); e++) {
                    List<String> on = l == 0 && e == 0 ? expert0On : l == 0 && e == 1 ? expert1On
                            : List.of("expert-0");
                    lp.addExperts(ExpertPlacement.newBuilder().setExpert(e).addAllInstanceIds(on));
                }
                p.addLayers(lp);
            }
            dispatch.usePlacement(PlacementTable.of(p.build(), c.numLayers(), c.dispatchableExperts()));
            Map<String, CountDownLatch> answers = new HashMap<>();
            for (String id : List.of("expert-0", "expert-1", "expert-2")) {
                answers.put(id, new CountDownLatch(1));
                instances.get(id).hold.set(answers.get(id));
            }
            return new ThreeInstances(model, instances, traces, dispatch, answers);
        }

        /** A random hidden state of one token. */
        float[] input() {
            Random random = new Random(7);
            float[] x = new float[model.config().hiddenSize()];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) random.nextGaussian();
            }
            return x;
        }

        /** Layer 0's experts computed in this process, the sum the mesh must give. */
        float[] reference(StepContext step, float[] x, int[] experts, float[] weights) {
            ModelConfig c = model.config();
            float[] reference = new float[c.hiddenSize()];
            new LocalExperts(c, key -> ExpertWeights.load(model.tensors(), c, key)).run(step, 0, x, experts, weights,
                    experts.length, reference);
            return reference;
        }

        @Override
        public void close() {
            dispatch.close();
            model.close();
        }
    }

    private static StepContext oneToken() {
        return StepContext.of(List.of(new SequenceStep(1, new int[] {5}, 0, SequenceStep.Logits.LAST, true)));
    }

    /**
     * One token whose two pairs both go to expert-0 (experts 0 and 1 of layer 0; expert 0 is also on expert-1,
     * expert 1 also on expert-2). expert-0 does not answer in time, so each pair is hedged to its other replica. The
     * replies come back in the order expert-1, expert-0, expert-2: expert-0's reply carries a pair expert-1 computed
     * already, so it is dropped, and the token's output is each pair once (twice the reference if it were summed).
     */
    @Test
    void hedgedPairAnsweredByBothReplicas_theLaterReplyIsDropped_andEachPairIsSummedOnce() throws Exception {
        try (ThreeInstances mesh = ThreeInstances.of(List.of("expert-0", "expert-1"),
                List.of("expert-0", "expert-2"))) {
            Map<String, InProcessInstance> instances = mesh.instances();
            float[] x = mesh.input();
            int[] experts = {0, 1};
            float[] weights = {0.625f, 0.375f};
            StepContext step = oneToken();
            float[] reference = mesh.reference(step, x, experts, weights);
            CompletableFuture<Void> released = CompletableFuture.runAsync(() -> {
                await("the hedges arrived").atMost(Duration.ofSeconds(30)).until(() ->
                        instances.get("expert-1").attempts.get() == 1
                                && instances.get("expert-2").attempts.get() == 1);
                for (String id : List.of("expert-1", "expert-0", "expert-2")) {
                    mesh.answers().get(id).countDown();
                    await(id + "'s reply is in").atMost(Duration.ofSeconds(30))
                            .until(() -> instances.get(id).delivered.get() == 1);
                }
            });
            float[] out = new float[x.length];

            mesh.dispatch().run(step, 0, x, experts, weights, 2, out);

            released.get(30, TimeUnit.SECONDS);
            assertThat(instances.get("expert-0").attempts.get()).as("one call, both pairs").isEqualTo(1);
            assertThat(out).containsExactly(reference, within(1e-5f));
            assertThat(mesh.traces().take(1).layers()).singleElement().satisfies(r -> assertThat(r.instances())
                    .extracting(LayerDispatchRecord.InstanceShare::instanceId)
                    .containsExactly("expert-1", "expert-2"));
            assertThat(mesh.dispatch().instances()).allSatisfy(r -> assertThat(r.state()).isEqualTo(State.CLOSED));
        }
    }

    /**
     * A call is hedged whole or not at all. One token whose two pairs both go to expert-0; expert 0 is also on
     * expert-1, expert 1 on expert-0 only. When expert-0 misses its hedge delay, hedging only expert 0's pair would
     * leave expert 1's pair to expert-0's call, whose reply (the sum of both pairs in one row) could no longer be
     * used once expert-1 answered: so nothing is hedged, and expert-0's late reply computes the token.
     */
    @Test
    void slowCallWithAPairNoFreeReplicaHolds_isNotHedgedAtAll_andItsLateReplyComputesTheToken() throws Exception {
        try (ThreeInstances mesh = ThreeInstances.of(List.of("expert-0", "expert-1"), List.of("expert-0"))) {
            Map<String, InProcessInstance> instances = mesh.instances();
            ResilientInstance slow = mesh.dispatch().instances().stream()
                    .filter(r -> r.id().equals("expert-0")).findFirst().orElseThrow();
            float[] x = mesh.input();
            int[] experts = {0, 1};
            float[] weights = {0.625f, 0.375f};
            StepContext step = oneToken();
            float[] reference = mesh.reference(step, x, experts, weights);
            CompletableFuture<Void> released = CompletableFuture.runAsync(() -> {
                await("expert-0's call missed its hedge delay").atMost(Duration.ofSeconds(30)).until(slow::lagging);
                // the engine thread would send a hedge in the same pass that marked expert-0 lagging, before this
                // thread can see it: so expert-1's attempts are final by now
                mesh.answers().get("expert-0").countDown();
            });
            float[] out = new float[x.length];

            mesh.dispatch().run(step, 0, x, experts, weights, 2, out);

            released.get(30, TimeUnit.SECONDS);
            assertThat(instances.get("expert-1").attempts.get()).as("no hedge of part of expert-0's call").isZero();
            assertThat(instances.get("expert-0").attempts.get()).as("one call, both pairs").isEqualTo(1);
            assertThat(out).containsExactly(reference, within(1e-5f));
            assertThat(mesh.traces().take(1).layers()).singleElement().satisfies(r -> assertThat(r.instances())
                    .extracting(LayerDispatchRecord.InstanceShare::instanceId).containsExactly("expert-0"));
        }
    }
}
