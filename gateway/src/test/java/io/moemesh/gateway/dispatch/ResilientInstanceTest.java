package io.moemesh.gateway.dispatch;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import io.github.resilience4j.circuitbreaker.CircuitBreaker.State;
import io.grpc.Status;
import io.moemesh.service.expert.EpochRefusedException;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.InstanceClient;
import io.moemesh.service.expert.InstanceHealth;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link ResilientInstance} as a plain object over a fake {@link InstanceClient} whose calls the test answers by
 * hand, with the real Resilience4j breaker and bulkhead: a full bulkhead refuses without calling the instance
 * and without counting a failure; a cancelled call is a failure and frees its slot; health NOT_SERVING or
 * UNREACHABLE makes the instance unavailable whatever the breaker says and SERVING moves an OPEN breaker to
 * HALF_OPEN; the call observer sees every answered call once, with its error; an epoch refusal or a withdrawn call is
 * not counted against the breaker; a call that missed its hedge delay makes the instance look fully loaded until one of
 * its calls ends by itself. (The whole recovery cycle through
 * the dispatcher is {@link ReplicaRecoveryTest}.)
 */
class ResilientInstanceTest {
    private static final ExpertCall CALL = new ExpertCall(1, 0, new float[4], 1, 4, new int[] {1}, new int[] {0},
            new float[] {1});
    /** Long enough that no test sees the breaker leave OPEN by itself. */
    private static final Duration OPEN_WAIT = Duration.ofMinutes(5);

    /** An instance whose calls stay pending until the test completes them. */
    private static final class FakeClient implements InstanceClient {
        final List<CompletableFuture<float[]>> calls = new CopyOnWriteArrayList<>();
        final List<Consumer<InstanceHealth>> listeners = new CopyOnWriteArrayList<>();
        volatile InstanceHealth health = InstanceHealth.UNKNOWN;
        volatile RuntimeException throwOnCall;
        volatile boolean closed;

        @Override
        public String id() {
            return "expert-7";
        }

        @Override
        public CompletableFuture<float[]> call(ExpertCall call) {
            if (throwOnCall != null) {
                throw throwOnCall;
            }
            CompletableFuture<float[]> f = new CompletableFuture<>();
            calls.add(f);
            return f;
        }

        @Override
        public int inFlight() {
            return (int) calls.stream().filter(f -> !f.isDone()).count();
        }

        @Override
        public InstanceHealth health() {
            return health;
        }

        @Override
        public void onHealthChange(Consumer<InstanceHealth> listener) {
            listeners.add(listener);
        }

        void health(InstanceHealth h) {
            health = h;
            listeners.forEach(l -> l.accept(h));
        }

        CompletableFuture<float[]> last() {
            return calls.getLast();
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private record Observation(String instanceId, long nanos, Throwable error) {
    }

    private final FakeClient client = new FakeClient();
    private final List<Observation> observed = new CopyOnWriteArrayList<>();

    private ResilientInstance instance(int maxConcurrent) {
        return new ResilientInstance(client, maxConcurrent, 50, OPEN_WAIT,
                (id, nanos, error) -> observed.add(new Observation(id, nanos, error)));
    }

    /** Three failed calls: the breaker's minimum number of calls, all failed. */
    private void open(ResilientInstance r) {
        for (int i = 0; i < 3; i++) {
            r.call(CALL);
            client.last().completeExceptionally(new IllegalStateException("boom " + i));
        }
        assertThat(r.state()).isEqualTo(State.OPEN);
    }

    private static Throwable failure(CompletableFuture<float[]> f) {
        assertThat(f).isCompletedExceptionally();
        Throwable t = catchThrowable(f::get);
        return t instanceof ExecutionException e ? e.getCause() : t;
    }

    @Test
    void fullBulkhead_refusesTheCall_withoutCallingTheInstance_norCountingAFailure() {
        ResilientInstance r = instance(2);
        CompletableFuture<float[]> a = r.call(CALL);
        CompletableFuture<float[]> b = r.call(CALL);
        for (int i = 0; i < 10; i++) {
            Throwable refused = failure(r.call(CALL));
            assertThat(refused).isInstanceOf(RejectedExecutionException.class)
                    .hasMessage("expert-7 has 2 calls in flight");
        }
        assertThat(client.calls).hasSize(2);
        assertThat(observed).as("a refusal is not a call").isEmpty();
        assertThat(r.state()).as("refusals are not failures").isEqualTo(State.CLOSED);

        client.calls.getFirst().complete(new float[4]);
        assertThat(a).isCompleted();
        assertThat(r.call(CALL)).as("the answered call gave its slot back").isNotCompletedExceptionally();
        assertThat(client.calls).hasSize(3);
        assertThat(b).isNotDone();
    }

    @Test
    void openBreaker_refusesTheCall_withoutCallingTheInstance() {
        ResilientInstance r = instance(4);
        open(r);
        Throwable refused = failure(r.call(CALL));
        assertThat(refused).isInstanceOf(RejectedExecutionException.class)
                .hasMessage("circuit breaker of expert-7 is OPEN");
        assertThat(client.calls).hasSize(3);
        assertThat(r.available()).isFalse();
    }

    @Test
    void answeredCall_completesWithTheInstancesRows_andIsObservedOnceWithoutError() throws Exception {
        ResilientInstance r = instance(1);
        CompletableFuture<float[]> f = r.call(CALL);
        assertThat(observed).as("nothing observed before the answer").isEmpty();
        float[] rows = {1, 2, 3, 4};
        client.last().complete(rows);
        assertThat(f.get()).isSameAs(rows);
        assertThat(observed).singleElement().satisfies(o -> {
            assertThat(o.instanceId()).isEqualTo("expert-7");
            assertThat(o.nanos()).isNotNegative();
            assertThat(o.error()).isNull();
        });
        f.cancel(false);
        assertThat(observed).as("cancelling a completed call records nothing").hasSize(1);
    }

    @Test
    void failedCall_failsWithTheInstancesError_andTheObserverSeesIt() {
        ResilientInstance r = instance(1);
        CompletableFuture<float[]> f = r.call(CALL);
        IllegalStateException boom = new IllegalStateException("expert-7 is down");
        client.last().completeExceptionally(boom);
        assertThat(failure(f)).isSameAs(boom);
        assertThat(observed).singleElement().satisfies(o -> assertThat(o.error()).isSameAs(boom));
        assertThat(r.call(CALL)).as("the failed call gave its slot back").isNotDone();
    }

    @Test
    void callThatThrows_isAFailedCall_thatFreesItsSlot() {
        ResilientInstance r = instance(1);
        client.throwOnCall = new IllegalStateException("stream closed");
        for (int i = 0; i < 3; i++) {
            assertThat(failure(r.call(CALL))).isSameAs(client.throwOnCall);
        }
        assertThat(observed).hasSize(3).allSatisfy(o -> assertThat(o.error()).isSameAs(client.throwOnCall));
        assertThat(r.state()).as("3 failures of 3").isEqualTo(State.OPEN);
    }

    @Test
    void cancelledCall_countsAsATimeout_freesItsSlot_cancelsTheSentCall_andIsObservedOnce() {
        ResilientInstance r = instance(1);
        CompletableFuture<float[]> f = r.call(CALL);
        CompletableFuture<float[]> sent = client.last();
        f.cancel(false);

        assertThat(sent).as("the instance's call is given up too").isCancelled();
        assertThat(observed).singleElement().satisfies(o -> assertThat(o.error())
                .isInstanceOf(TimeoutException.class).hasMessage("expert-7 did not answer in time"));
        sent.complete(new float[4]);
        assertThat(observed).as("a late answer is not observed again").hasSize(1);
        assertThat(r.call(CALL)).as("the slot is free again").isNotDone();
        assertThat(client.calls).hasSize(2);
    }

    @Test
    void threeCancelledCalls_openTheBreaker() {
        ResilientInstance r = instance(1);
        for (int i = 0; i < 3; i++) {
            r.call(CALL).cancel(false);
        }
        assertThat(r.state()).isEqualTo(State.OPEN);
        assertThat(r.available()).isFalse();
    }

    @Test
    void failuresBelowTheRate_keepTheBreakerClosed() {
        ResilientInstance r = instance(1);
        for (int i = 0; i < 10; i++) {
            r.call(CALL);
            if (i % 4 == 3) {
                client.last().completeExceptionally(new IllegalStateException("sometimes"));
            } else {
                client.last().complete(new float[4]);
            }
        }
        assertThat(r.state()).as("2 failures of 10, never 50% of the window").isEqualTo(State.CLOSED);
        assertThat(observed).hasSize(10);
    }

    @ParameterizedTest
    @EnumSource(value = InstanceHealth.class, names = {"NOT_SERVING", "UNREACHABLE"})
    void healthSayingDown_makesTheInstanceUnavailable_withAClosedBreaker(InstanceHealth down) {
        ResilientInstance r = instance(1);
        client.health(down);
        assertThat(r.available()).isFalse();
        assertThat(r.state()).isEqualTo(State.CLOSED);
        assertThat(r.health()).isEqualTo(down);
    }

    @ParameterizedTest
    @EnumSource(value = InstanceHealth.class, names = {"UNKNOWN", "SERVING"})
    void healthNotSayingDown_leavesAClosedBreakerAvailable(InstanceHealth h) {
        ResilientInstance r = instance(1);
        client.health(h);
        assertThat(r.available()).isTrue();
        assertThat(r.probing()).isFalse();
        assertThat(r.state()).isEqualTo(State.CLOSED);
    }

    @ParameterizedTest
    @EnumSource(value = InstanceHealth.class, names = {"UNKNOWN", "NOT_SERVING", "UNREACHABLE"})
    void healthOtherThanServing_leavesAnOpenBreakerOpen(InstanceHealth h) {
        ResilientInstance r = instance(1);
        open(r);
        client.health(h);
        assertThat(r.state()).isEqualTo(State.OPEN);
        assertThat(r.available()).isFalse();
    }

    @Test
    void healthTurningServing_movesAnOpenBreakerToHalfOpen_andTheNextCallIsTheOnlyProbe() {
        ResilientInstance r = instance(4);
        open(r);
        client.health(InstanceHealth.UNREACHABLE);
        client.health(InstanceHealth.SERVING);
        assertThat(r.state()).isEqualTo(State.HALF_OPEN);
        assertThat(r.available()).isTrue();
        assertThat(r.probing()).isTrue();

        CompletableFuture<float[]> probe = r.call(CALL);
        assertThat(failure(r.call(CALL))).as("one probe at a time").isInstanceOf(RejectedExecutionException.class)
                .hasMessage("circuit breaker of expert-7 is HALF_OPEN");
        assertThat(client.calls).hasSize(4);
        client.last().complete(new float[4]);
        assertThat(probe).isCompleted();
        assertThat(r.state()).as("one successful probe closes the breaker").isEqualTo(State.CLOSED);
        assertThat(r.probing()).isFalse();
    }

    @Test
    void failedProbe_opensTheBreakerAgain() {
        ResilientInstance r = instance(4);
        open(r);
        client.health(InstanceHealth.SERVING);
        r.call(CALL);
        client.last().completeExceptionally(new IllegalStateException("still broken"));
        assertThat(r.state()).isEqualTo(State.OPEN);
        assertThat(r.available()).isFalse();
    }

    @Test
    void servingReportedAgain_whileHalfOpen_changesNothing() {
        ResilientInstance r = instance(4);
        open(r);
        client.health(InstanceHealth.SERVING);
        client.health(InstanceHealth.SERVING);
        assertThat(r.state()).isEqualTo(State.HALF_OPEN);
    }

    @Test
    void healthDown_winsOverAHalfOpenBreaker() {
        ResilientInstance r = instance(4);
        open(r);
        client.health(InstanceHealth.SERVING);
        client.health(InstanceHealth.NOT_SERVING);
        assertThat(r.state()).isEqualTo(State.HALF_OPEN);
        assertThat(r.available()).as("known down: no probe is sent").isFalse();
    }

    @Test
    void load_isTheClientsCallsInFlight() {
        ResilientInstance r = instance(4);
        r.call(CALL);
        r.call(CALL);
        assertThat(r.load()).isEqualTo(2);
        client.calls.getFirst().complete(new float[4]);
        assertThat(r.load()).isEqualTo(1);
    }

    /** What the expert-service's STALE_EPOCH reply becomes in the client. */
    private static EpochRefusedException staleEpoch() {
        return new EpochRefusedException("expert-7: stale epoch 1, serving 2", true,
                Status.FAILED_PRECONDITION.withDescription("expert-7: stale epoch 1, serving 2").asRuntimeException());
    }

    @Test
    void epochRefusals_areNotCountedAgainstTheBreaker_butAreObservedAsFailedCalls() {
        ResilientInstance r = instance(1);
        for (int i = 0; i < 10; i++) {
            CompletableFuture<float[]> f = r.call(CALL);
            client.last().completeExceptionally(staleEpoch());
            assertThat(failure(f)).isInstanceOf(EpochRefusedException.class);
        }
        assertThat(r.state()).as("the gateway's epoch was off, not the instance").isEqualTo(State.CLOSED);
        assertThat(r.available()).isTrue();
        assertThat(observed).hasSize(10).allSatisfy(o -> assertThat(o.error()).isInstanceOf(EpochRefusedException.class));
        assertThat(r.call(CALL)).as("every refusal gave its slot back").isNotDone();
    }

    @Test
    void epochRefusedProbe_leavesTheBreakerHalfOpen_andTheNextCallProbesAgain() {
        ResilientInstance r = instance(4);
        open(r);
        client.health(InstanceHealth.SERVING);
        r.call(CALL);
        client.last().completeExceptionally(new CompletionException(staleEpoch()));
        assertThat(r.state()).isEqualTo(State.HALF_OPEN);
        r.call(CALL);
        client.last().complete(new float[4]);
        assertThat(r.state()).isEqualTo(State.CLOSED);
    }

    @Test
    void withdrawnCall_freesItsSlot_cancelsTheSentCall_andCountsNothing() {
        ResilientInstance r = instance(1);
        for (int i = 0; i < 5; i++) {
            CompletableFuture<float[]> f = r.call(CALL);
            assertThat(client.calls).as("the previous withdrawal gave the slot back").hasSize(i + 1);
            r.withdraw(f);
            assertThat(client.last()).isCancelled();
            assertThat(f).isCompletedExceptionally();
        }
        assertThat(r.state()).as("a hedge that lost is no failure").isEqualTo(State.CLOSED);
        assertThat(observed).isEmpty();
        CompletableFuture<float[]> answered = r.call(CALL);
        client.last().complete(new float[4]);
        r.withdraw(answered);
        assertThat(answered).as("withdrawing an answered call changes nothing").isCompleted()
                .isNotCompletedExceptionally();
    }

    @Test
    void lagging_makesTheInstanceLookFullyLoaded_untilOneOfItsCallsEndsByItself() {
        ResilientInstance r = instance(4);
        CompletableFuture<float[]> wedged = r.call(CALL);
        r.call(CALL);
        r.markLagging(System.nanoTime() + Duration.ofMinutes(5).toNanos());
        assertThat(r.lagging()).isTrue();
        assertThat(r.load()).isEqualTo(2 + ResilientInstance.LAGGING_LOAD);

        wedged.cancel(false);
        assertThat(r.load()).as("a call given up on: still lagging").isEqualTo(1 + ResilientInstance.LAGGING_LOAD);
        client.last().complete(new float[4]);
        assertThat(r.lagging()).as("it answered").isFalse();
        assertThat(r.load()).isZero();
    }

    @Test
    void lagging_endsWithTheDeadlineOfTheCallThatMissedItsHedgeDelay() {
        ResilientInstance r = instance(4);
        r.markLagging(System.nanoTime() - 1);
        assertThat(r.lagging()).isFalse();
        assertThat(r.load()).isZero();
    }

    @Test
    void close_closesTheClient_andRunsTheCloseActions() {
        ResilientInstance r = instance(1);
        List<String> ran = new CopyOnWriteArrayList<>();
        r.onClose(() -> ran.add("metrics removed"));
        r.close();
        assertThat(client.closed).isTrue();
        assertThat(ran).containsExactly("metrics removed");
    }
}
