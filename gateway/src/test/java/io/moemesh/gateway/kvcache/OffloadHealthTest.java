package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import java.time.Duration;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The refusal window and its single probe, on a clock the test moves (a 5 s offload timeout). */
class OffloadHealthTest {
    private static final long SECOND = 1_000_000_000L;
    private final AtomicLong now = new AtomicLong(1_000 * SECOND);
    private final OffloadHealth health = new OffloadHealth(Duration.ofSeconds(5), now::get);

    private void down() {
        for (int i = 0; i < OffloadHealth.DOWN_AFTER_FAILURES; i++) {
            health.failed();
        }
    }

    @Test
    void refusesLongPrompts_onlyOnceTheServiceLooksDown_andRetryAfterIsWhatRemainsOfTheWindow() {
        health.failed();
        health.failed();
        assertThat(health.refusesLongPrompts()).isFalse();
        assertThat(health.retryAfterSeconds()).isOne();

        health.failed();
        assertThat(health.refusesLongPrompts()).isTrue();
        assertThat(health.retryAfterSeconds()).isEqualTo(5);
        now.addAndGet(3 * SECOND + 1);
        assertThat(health.refusesLongPrompts()).isTrue();
        assertThat(health.retryAfterSeconds()).as("1.99… s left, rounded up").isEqualTo(2);
    }

    @Test
    void pastTheWindow_exactlyOneLongPromptIsLetThrough_untilItsOffloadSettles() {
        down();
        now.addAndGet(5 * SECOND);

        assertThat(health.refusing()).as("nothing claimed by asking").isFalse();
        assertThat(health.refusesLongPrompts()).as("the probe").isFalse();
        assertThat(health.refusesLongPrompts()).as("the next, while the probe is under way").isTrue();
        assertThat(health.refusing()).isTrue();
        assertThat(health.retryAfterSeconds()).isEqualTo(5);
        now.addAndGet(4 * SECOND);
        assertThat(health.refusesLongPrompts()).isTrue();
    }

    @Test
    void aProbeWhoseOffloadNeverComes_holdsTheRefusalsOneWindow_thenAnotherIsLetThrough() {
        down();
        now.addAndGet(5 * SECOND);
        assertThat(health.refusesLongPrompts()).isFalse();

        now.addAndGet(5 * SECOND);

        assertThat(health.refusesLongPrompts()).isFalse();
        assertThat(health.refusesLongPrompts()).isTrue();
    }

    @Test
    void aPin_endsTheRefusals() {
        down();
        now.addAndGet(5 * SECOND);
        assertThat(health.refusesLongPrompts()).isFalse();

        health.pinned();

        assertThat(health.looksDown()).isFalse();
        assertThat(health.refusesLongPrompts()).isFalse();
        assertThat(health.refusesLongPrompts()).isFalse();
        assertThat(health.retryAfterSeconds()).isOne();
    }

    @Test
    void aFailure_opensANewWindow_andEndsTheProbe() {
        down();
        now.addAndGet(5 * SECOND);
        assertThat(health.refusesLongPrompts()).isFalse();
        now.addAndGet(2 * SECOND);

        health.failed();

        assertThat(health.retryAfterSeconds()).isEqualTo(5);
        now.addAndGet(5 * SECOND - 1);
        assertThat(health.refusesLongPrompts()).isTrue();
        now.addAndGet(1);
        assertThat(health.refusesLongPrompts()).as("the next probe").isFalse();
    }

    @Test
    void unanswered_isATransportErrorOrATimeout_notAnAnswer() {
        assertThat(OffloadHealth.unanswered(new CompletionException(new TimeoutException()))).isTrue();
        assertThat(OffloadHealth.unanswered(Status.UNAVAILABLE.asRuntimeException())).isTrue();
        assertThat(OffloadHealth.unanswered(Status.DEADLINE_EXCEEDED.asRuntimeException())).isTrue();
        assertThat(OffloadHealth.unanswered(Status.INVALID_ARGUMENT.asRuntimeException())).isFalse();
        assertThat(OffloadHealth.unanswered(new IllegalStateException("Pin answered 2 results"))).isFalse();
    }
}
