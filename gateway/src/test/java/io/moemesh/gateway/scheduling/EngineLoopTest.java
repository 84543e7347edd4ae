package io.moemesh.gateway.scheduling;

import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The engine thread never busy-spins: not while idle, and not while a pass keeps failing. */
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
}
