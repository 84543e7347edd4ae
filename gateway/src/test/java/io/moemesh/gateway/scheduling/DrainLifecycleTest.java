package io.moemesh.gateway.scheduling;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.serving.AdmissionControl;
import io.moemesh.gateway.serving.DrainingException;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The drain waits for every request it let in: admitted and not yet submitted ones too. */
class DrainLifecycleTest {
    private static final Duration GRACE = Duration.ofSeconds(60);
    private static MoeModel model;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @Test
    void drain_waitsForAnAdmittedRequestNotYetSubmitted_andEndsPromptlyOnceItEnds() {
        try (EngineLoop loop = new EngineLoop(new StepScheduler(model.localEngine(), model.newCache(64), 16, 1),
                () -> { }, Duration.ofMillis(10))) {
            AdmissionControl admission = new AdmissionControl(8, 0, 20, 32, 32, loop::waiting, System::nanoTime);
            DrainLifecycle drain = new DrainLifecycle(admission, loop, GRACE);
            drain.start();
            AdmissionControl.Reservation admitted = admission.admit("t", 1, 4);

            CompletableFuture<Void> stopping = CompletableFuture.runAsync(drain::stop);
            await().atMost(Duration.ofSeconds(10)).until(admission::draining);
            assertThatThrownBy(() -> admission.admit("t", 1, 4)).isInstanceOf(DrainingException.class);
            await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(5))
                    .until(() -> !stopping.isDone() && drain.isRunning());

            // Its submit, as GenerationService does it: in the engine first, then the reservation released.
            CompletableFuture<GenerationResult> result = new CompletableFuture<>();
            loop.submit(new GenerationRequest(new int[] {1, 2, 3}, SamplingParams.greedy(4), false),
                    new SequenceListener() {
                        @Override
                        public void onToken(int token) {
                        }

                        @Override
                        public void onFinish(GenerationResult r) {
                            result.complete(r);
                        }

                        @Override
                        public void onError(Throwable error) {
                            result.completeExceptionally(error);
                        }
                    }, "t");
            admitted.release();
            // Long before the grace: the drain ends once the sequence has.
            await().atMost(Duration.ofSeconds(30)).until(stopping::isDone);
            assertThat(result).isCompleted();
            assertThat(drain.isRunning()).isFalse();
            assertThat(loop.inFlight()).isZero();
        }
    }

    @Test
    void drain_admittedRequestThatIsNeverSubmitted_endsOnceItsReservationIsReleased() {
        try (EngineLoop loop = new EngineLoop(new StepScheduler(model.localEngine(), model.newCache(64), 16, 1),
                () -> { }, Duration.ofMillis(10))) {
            AdmissionControl admission = new AdmissionControl(8, 0, 20, 32, 32, loop::waiting, System::nanoTime);
            DrainLifecycle drain = new DrainLifecycle(admission, loop, GRACE);
            AdmissionControl.Reservation admitted = admission.admit("t", 1, 4);
            CompletableFuture<Void> stopping = CompletableFuture.runAsync(drain::stop);
            await().during(Duration.ofMillis(300)).atMost(Duration.ofSeconds(5)).until(() -> !stopping.isDone());
            admitted.release();
            await().atMost(Duration.ofSeconds(10)).until(stopping::isDone);
        }
    }
}
