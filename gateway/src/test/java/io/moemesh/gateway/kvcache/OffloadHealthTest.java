package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.moemesh.gateway.serving.SequenceCaps;
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

    /** A long prompt's admission: refused, or let through (claiming the probe when the service looks down). */
    private boolean refused() {
        return health.admitLongPrompt().isEmpty();
    }

    private void down() {
        for (int i = 0; i < OffloadHealth.DOWN_AFTER_FAILURES; i++) {
            health.failed();
        }
    }

    @Test
    void refusesLongPrompts_onlyOnceTheServiceLooksDown_andRetryAfterIsWhatRemainsOfTheWindow() {
        health.failed();
        health.failed();
        assertThat(refused()).isFalse();
        assertThat(health.retryAfterSeconds()).isOne();

        health.failed();
        assertThat(refused()).isTrue();
        assertThat(health.retryAfterSeconds()).isEqualTo(5);
        now.addAndGet(3 * SECOND + 1);
        assertThat(refused()).isTrue();
        assertThat(health.retryAfterSeconds()).as("1.99… s left, rounded up").isEqualTo(2);
    }

    @Test
    void pastTheWindow_exactlyOneLongPromptIsLetThrough_untilItsOffloadSettles() {
        down();
        now.addAndGet(5 * SECOND);

        assertThat(health.refusing()).as("nothing claimed by asking").isFalse();
        assertThat(refused()).as("the probe").isFalse();
        assertThat(refused()).as("the next, while the probe is under way").isTrue();
        assertThat(health.refusing()).isTrue();
        assertThat(health.retryAfterSeconds()).isEqualTo(5);
        now.addAndGet(4 * SECOND);
        assertThat(refused()).isTrue();
    }

    @Test
    void aProbeWhoseOffloadNeverComes_holdsTheRefusalsOneWindow_thenAnotherIsLetThrough() {
        down();
        now.addAndGet(5 * SECOND);
        assertThat(refused()).isFalse();

        now.addAndGet(5 * SECOND);

        assertThat(refused()).isFalse();
        assertThat(refused()).isTrue();
    }

    @Test
    void aProbeWhoseSequenceTheCacheReleases_freesTheClaim_soTheNextLongPromptProbes() {
        down();
        now.addAndGet(5 * SECOND);
        SequenceCaps.Admitted probe = health.admitLongPrompt().orElseThrow();
        probe.submitted(7);

        health.released(8);
        assertThat(refused()).as("another sequence's release").isTrue();
        health.released(7); // preempted (or ended) before its offload's outcome

        assertThat(health.refusing()).isFalse();
        assertThat(refused()).as("the next probe").isFalse();
        assertThat(refused()).isTrue();
    }

    @Test
    void aProbeThatEnds_evenUnsubmitted_freesTheClaim_butNotALaterProbes() {
        down();
        now.addAndGet(5 * SECOND);
        SequenceCaps.Admitted notSubmitted = health.admitLongPrompt().orElseThrow();

        notSubmitted.ended(); // the engine refused it
        SequenceCaps.Admitted next = health.admitLongPrompt().orElseThrow();
        next.submitted(3);
        notSubmitted.ended();

        assertThat(refused()).as("the later probe's claim holds").isTrue();
        next.ended();
        next.ended();
        assertThat(refused()).isFalse();
    }

    @Test
    void aPromptLetThroughWhileTheServiceLooksUp_isNoProbe() {
        assertThat(health.admitLongPrompt()).containsSame(SequenceCaps.Admitted.PLAIN);
    }

    @Test
    void aPin_endsTheRefusals() {
        down();
        now.addAndGet(5 * SECOND);
        assertThat(refused()).isFalse();

        health.pinned();

        assertThat(health.looksDown()).isFalse();
        assertThat(refused()).isFalse();
        assertThat(refused()).isFalse();
        assertThat(health.retryAfterSeconds()).isOne();
    }

    @Test
    void aFailure_opensANewWindow_andEndsTheProbe() {
        down();
        now.addAndGet(5 * SECOND);
        assertThat(refused()).isFalse();
        now.addAndGet(2 * SECOND);

        health.failed();

        assertThat(health.retryAfterSeconds()).isEqualTo(5);
        now.addAndGet(5 * SECOND - 1);
        assertThat(refused()).isTrue();
        now.addAndGet(1);
        assertThat(refused()).as("the next probe").isFalse();
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
