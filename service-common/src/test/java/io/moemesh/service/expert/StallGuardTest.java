package io.moemesh.service.expert;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.service.expert.StallGuard.Verdict;
import org.junit.jupiter.api.Test;

/** The stall guard on a clock of its own (nanoseconds given to it): what it calls a stream not being read. */
class StallGuardTest {
    private static final long BOUND = 1_000;

    @Test
    void anyNumberOfSendsWhileNotReady_withinTheBound_areNeverStalled_andOneCheckIsAsked() {
        StallGuard g = new StallGuard(BOUND);

        assertThat(g.sending(false, 0)).isEqualTo(Verdict.CHECK_LATER);
        assertThat(g.checkDelayNanos(0)).isEqualTo(BOUND);
        for (int i = 1; i < 1_000; i++) {
            assertThat(g.sending(false, i)).as("send %d", i).isEqualTo(Verdict.FINE);
        }
    }

    @Test
    void notReady_withMovementBeforeTheBound_isNotStalled_theClockRestartsAtTheMovement() {
        StallGuard g = new StallGuard(BOUND);
        g.sending(false, 0);
        g.progressed(); // a reply, or the transport drained

        assertThat(g.checkDue(false, BOUND)).as("moved: timed again from now").isEqualTo(Verdict.CHECK_LATER);
        assertThat(g.checkDelayNanos(BOUND)).isEqualTo(BOUND);
        assertThat(g.sending(false, 2 * BOUND - 1)).isEqualTo(Verdict.FINE);
        assertThat(g.checkDue(false, 2 * BOUND)).isEqualTo(Verdict.STALLED);
    }

    @Test
    void notReady_withNothingMovingForTheBound_isStalled_atASendAsAtTheCheck() {
        StallGuard atSend = new StallGuard(BOUND);
        atSend.sending(false, 0);
        assertThat(atSend.sending(false, BOUND)).isEqualTo(Verdict.STALLED);

        StallGuard atCheck = new StallGuard(BOUND);
        atCheck.sending(false, 0);
        assertThat(atCheck.checkDue(false, BOUND)).isEqualTo(Verdict.STALLED);
    }

    @Test
    void aReadyStream_isFine_andStopsTheClock() {
        StallGuard g = new StallGuard(BOUND);
        g.sending(false, 0);

        assertThat(g.sending(true, BOUND / 2)).isEqualTo(Verdict.FINE);
        assertThat(g.checkDue(true, 2 * BOUND)).as("drained by then: no further check").isEqualTo(Verdict.FINE);
        assertThat(g.sending(false, 3 * BOUND)).as("a new wait is timed from its start").isEqualTo(Verdict.CHECK_LATER);
        assertThat(g.sending(false, 4 * BOUND - 1)).isEqualTo(Verdict.FINE);
    }

    @Test
    void sendThatMakesTheStreamNotReady_startsTheClockAtThatSend_andAsksForACheck() {
        StallGuard g = new StallGuard(BOUND);

        assertThat(g.sending(true, 0)).as("ready before the send: nothing to time").isEqualTo(Verdict.FINE);
        assertThat(g.sent(false, 0)).as("not ready after it").isEqualTo(Verdict.CHECK_LATER);
        assertThat(g.checkDelayNanos(0)).isEqualTo(BOUND);
        assertThat(g.checkDue(false, BOUND)).isEqualTo(Verdict.STALLED);
    }
}
