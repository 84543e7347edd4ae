package io.moemesh.gateway.scheduling;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.ExpertDispatch;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The engine thread never busy-spins: not while idle, and not while a pass keeps failing; and when it dies, no
 * sequence is left waiting for it.
 */
class EngineLoopTest {
    private static MoeModel model;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static StepScheduler scheduler() {
        return new StepScheduler(model.localEngine(), model.newCache(64), 16, 1);
    }

    @Test
    void failingPass_waitsForTheNextWakeUpOrPollInterval_beforeTryingAgain() {
        AtomicInteger passes = new AtomicInteger();
        try (EngineLoop loop = new EngineLoop(scheduler(), () -> {
            passes.incrementAndGet();
            throw new IllegalStateException("the step boundary hook broke");
        }, Duration.ofHours(1))) {
            await().atMost(Duration.ofSeconds(10)).until(() -> passes.get() >= 1);
            await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(5)).until(() -> passes.get() == 1);
            loop.wakeUp();
            await().atMost(Duration.ofSeconds(10)).until(() -> passes.get() == 2);
        }
    }

    @Test
    void idlePollBelowOneMillisecond_refused_itWouldBeNoWaitAtAll() {
        assertThatThrownBy(() -> new EngineLoop(scheduler(), () -> { }, Duration.ofNanos(500_000)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("the engine loop's idle poll must be at least 1ms, got PT0.0005S");
    }

    /** Records how a sequence ended; each of its tokens runs {@code eachToken} on the engine thread. */
    private static final class Ending implements SequenceListener {
        final CompletableFuture<Throwable> error = new CompletableFuture<>();
        private final Runnable eachToken;

        Ending(Runnable eachToken) {
            this.eachToken = eachToken;
        }

        @Override
        public void onToken(int token) {
            eachToken.run();
        }

        @Override
        public void onFinish(GenerationResult result) {
            error.complete(null);
        }

        @Override
        public void onError(Throwable e) {
            error.complete(e);
        }
    }

    private static GenerationRequest request() {
        return new GenerationRequest(new int[] {1, 5, 9}, SamplingParams.greedy(20), false);
    }

    @Test
    void engineThreadDyingOfAnError_endsTheRunningAndTheQueuedSequence_andRefusesLaterSubmitsAtOnce() {
        CountDownLatch secondQueued = new CountDownLatch(1);
        // One running sequence at most: the second waits in the queue while the first's token kills the thread.
        try (EngineLoop loop = new EngineLoop(scheduler(), () -> { }, Duration.ofMillis(10))) {
            Ending running = new Ending(() -> {
                try {
                    secondQueued.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                throw new StackOverflowError("injected by the test");
            });
            Ending queued = new Ending(() -> { });
            loop.submit(request(), running, "t");
            loop.submit(request(), queued, "t");
            secondQueued.countDown();

            for (Ending e : new Ending[] {running, queued}) {
                assertThat(e.error.orTimeout(30, TimeUnit.SECONDS).join()).isInstanceOf(EngineStoppedException.class)
                        .hasMessageStartingWith("the engine stopped: stack overflow");
            }
            await().atMost(Duration.ofSeconds(10)).until(() -> !loop.alive());
            assertThat(loop.inFlight()).isZero();
            Ending late = new Ending(() -> { });
            assertThatThrownBy(() -> loop.submit(request(), late, "t")).isInstanceOf(EngineStoppedException.class)
                    .hasMessageStartingWith("the engine stopped: stack overflow");
            assertThat(loop.inFlight()).isZero();
            assertThat(late.error).isNotDone();
        }
    }

    @Test
    void closedLoop_endsTheSequenceItStillHeld_andRefusesLaterSubmits() {
        CountDownLatch generating = new CountDownLatch(1);
        CountDownLatch never = new CountDownLatch(1);
        EngineLoop loop = new EngineLoop(scheduler(), () -> { }, Duration.ofMillis(10));
        // Its token waits until close interrupts the engine thread: the sequence is still held when the loop ends.
        Ending held = new Ending(() -> {
            generating.countDown();
            try {
                never.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        loop.submit(request(), held, "t");
        await().atMost(Duration.ofSeconds(10)).until(() -> generating.getCount() == 0);
        loop.close();
        assertThat(held.error.orTimeout(30, TimeUnit.SECONDS).join()).isInstanceOf(EngineStoppedException.class)
                .hasMessage("the engine stopped: the gateway is shutting down");
        assertThat(loop.inFlight()).isZero();
        assertThatThrownBy(() -> loop.submit(request(), new Ending(() -> { }), "t"))
                .isInstanceOf(EngineStoppedException.class);
    }

    /**
     * The steps counter (moemesh_gateway_engine_steps_total) counts forward passes: the step that only ends a sequence
     * whose client found its stop string runs none. It was counted, and skewed the documented micro-batches per step.
     */
    @Test
    void stepsCounter_countsForwardPassesOnly_notAStepThatOnlyEndedAStoppedSequence() {
        AtomicInteger passes = new AtomicInteger();
        LocalExperts local = LocalExperts.fromStore(model.tensors(), model.config());
        ExpertDispatch counting = (step, layer, x, experts, weights, pairsPerToken, out) -> {
            if (layer == 0) {
                passes.incrementAndGet();
            }
            local.run(step, layer, x, experts, weights, pairsPerToken, out);
        };
        AtomicInteger boundaries = new AtomicInteger();
        StepScheduler scheduler = new StepScheduler(model.engine(counting), model.newCache(64), 16, 1);
        try (EngineLoop loop = new EngineLoop(scheduler, boundaries::incrementAndGet, Duration.ofMillis(10))) {
            CompletableFuture<StepScheduler.Handle> handle = new CompletableFuture<>();
            // The first token's text holds the client's stop string: it stops the sequence, which ends next step.
            Ending stopped = new Ending(() -> handle.join().stop());
            handle.complete(loop.submit(request(), stopped, "t"));
            assertThat(stopped.error.orTimeout(30, TimeUnit.SECONDS).join()).as("finished, no error").isNull();
            // One more step boundary: the pass that ended the sequence is over, counted or not.
            int seen = boundaries.get();
            await().atMost(Duration.ofSeconds(10)).until(() -> boundaries.get() > seen);

            assertThat(passes.get()).as("forward passes: the prefill with the first token").isEqualTo(1);
            assertThat(loop.steps()).isEqualTo(passes.get());
        }
    }
}
