package io.moemesh.gateway.serving;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.gateway.dispatch.ExpertUnavailableException;
import io.moemesh.gateway.http.OpenAiErrors;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class AdmissionControlTest {
    private final AtomicInteger waiting = new AtomicInteger();
    private final AtomicLong now = new AtomicLong();

    private AdmissionControl control(double rate) {
        return new AdmissionControl(4, rate, 2, 100, 50, waiting::get, now::get);
    }

    @Test
    void fullWaitingQueue_isOverloaded_withARetryHint() {
        AdmissionControl c = control(0);
        waiting.set(4);
        assertThatThrownBy(() -> c.admit("t", 10, 10)).isInstanceOfSatisfying(OverloadedException.class,
                e -> assertThat(e.retryAfterSeconds()).isPositive()).hasMessageContaining("waiting queue is full");
        waiting.set(3);
        c.admit("t", 10, 10);
    }

    /**
     * Racing submitters against max-waiting 1: each one's sequence reaches the scheduler's count only after every
     * one has tried (the widest window between admission and submit), yet exactly one is admitted.
     */
    @Test
    void racingSubmitters_exactlyMaxWaitingAdmitted_theRestOverloaded() throws Exception {
        AtomicInteger queue = new AtomicInteger();
        AdmissionControl c = new AdmissionControl(1, 0, 2, 100, 50, queue::get, now::get);
        int n = 8;
        CountDownLatch start = new CountDownLatch(1);
        CountDownLatch tried = new CountDownLatch(n);
        AtomicInteger admitted = new AtomicInteger();
        AtomicInteger overloaded = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                done.add(pool.submit(() -> {
                    start.await();
                    AdmissionControl.Reservation slot = null;
                    try {
                        slot = c.admit("t", 1, 1);
                        admitted.incrementAndGet();
                    } catch (OverloadedException e) {
                        overloaded.incrementAndGet();
                    }
                    tried.countDown();
                    tried.await();
                    if (slot != null) {
                        queue.incrementAndGet(); // submitted: the scheduler counts it now
                        slot.release();
                    }
                    return null;
                }));
            }
            start.countDown();
            for (Future<?> f : done) {
                f.get(30, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertThat(admitted).hasValue(1);
        assertThat(overloaded).hasValue(n - 1);
        assertThatThrownBy(() -> c.admit("t", 1, 1)).as("the admitted one waits in the scheduler")
                .isInstanceOf(OverloadedException.class);
        queue.set(0); // it started running
        c.admit("t", 1, 1).release();
    }

    @Test
    void promptOrMaxTokensOverTheLimit_isACallerMistake() {
        AdmissionControl c = control(0);
        assertThatThrownBy(() -> c.admit("t", 101, 1)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("prompt of 101 tokens exceeds the limit of 100");
        assertThatThrownBy(() -> c.admit("t", 1, 51)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("max_tokens 51 exceeds the limit of 50");
    }

    /** The bucket of a tenant is charged as its requests arrive; tenants are independent. */
    @Test
    void tokenBucket_refillsAtTheTenantsRate_andTenantsAreIndependent() {
        AdmissionControl c = control(1.0);
        c.chargeRate("a");
        c.chargeRate("a");
        assertThatThrownBy(() -> c.chargeRate("a")).isInstanceOfSatisfying(OverloadedException.class,
                e -> assertThat(e.retryAfterSeconds()).isEqualTo(1)).hasMessageContaining("tenant a exceeds its rate limit");
        c.chargeRate("b");
        now.addAndGet(1_000_000_000L);
        c.chargeRate("a");
        assertThatThrownBy(() -> c.chargeRate("a")).hasMessageContaining("tenant a exceeds its rate limit");
    }

    /**
     * Admission does not charge the rate again: a request charged when it arrived is admitted whatever its tenant's
     * bucket holds now, and a tenant's refused admissions (a full queue) leave its bucket as it was.
     */
    @Test
    void admission_takesNoRateToken_theArrivalDid() {
        AdmissionControl c = control(1.0);
        c.chargeRate("a");
        c.chargeRate("a");
        c.admit("a", 1, 1).release();
        c.admit("a", 1, 1).release();
        c.admit("a", 1, 1).release();
        waiting.set(4);
        assertThatThrownBy(() -> c.admit("b", 1, 1)).hasMessageContaining("waiting queue is full");
        c.chargeRate("b");
        c.chargeRate("b");
    }

    @Test
    void draining_refusesEverything() {
        AdmissionControl c = control(0);
        c.startDraining();
        assertThatThrownBy(() -> c.admit("t", 1, 1)).isInstanceOf(DrainingException.class);
    }

    @Test
    void httpStatuses_followOpenAi_withRetryAfterOnEveryRetryableOne() {
        assertThat(OpenAiErrors.of(new OverloadedException("busy", 3), "r1").getStatusCode().value()).isEqualTo(429);
        assertThat(OpenAiErrors.of(new OverloadedException("busy", 3), "r1").getHeaders().getFirst("Retry-After"))
                .isEqualTo("3");
        var unavailable = OpenAiErrors.of(new ExpertUnavailableException("layer 1 expert 2 has no healthy replica", null),
                "r1");
        assertThat(unavailable.getStatusCode().value()).isEqualTo(503);
        assertThat(unavailable.getHeaders().getFirst("Retry-After")).isEqualTo("1");
        assertThat(OpenAiErrors.of(new DrainingException(), "r1").getStatusCode().value()).isEqualTo(503);
        assertThat(OpenAiErrors.of(new IllegalArgumentException("bad"), "r1").getStatusCode().value()).isEqualTo(400);
        var tooLong = OpenAiErrors.of(new PromptTooLongException("messages", "too long"), "r1");
        assertThat(tooLong.getStatusCode().value()).isEqualTo(400);
        assertThat(tooLong.getBody().get("error")).asString().contains("context_length_exceeded").contains("messages");
    }

    @Test
    void serverError_is500_sayingOnlyInternalErrorAndTheRequestId() {
        var r = OpenAiErrors.of(new IllegalStateException("secret internals"), "req-42");
        assertThat(r.getStatusCode().value()).isEqualTo(500);
        assertThat(r.getBody().get("error")).asString().contains("internal error; request id req-42")
                .doesNotContain("IllegalStateException").doesNotContain("secret internals");
    }
}
