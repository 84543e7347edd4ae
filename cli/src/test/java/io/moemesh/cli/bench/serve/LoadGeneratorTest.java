package io.moemesh.cli.bench.serve;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class LoadGeneratorTest {

    private static List<BenchPrompt> prompts(int n) {
        List<BenchPrompt> p = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            p.add(new BenchPrompt("p" + i, null, 3, 2, false));
        }
        return p;
    }

    private static RequestOutcome ok(BenchPrompt p) {
        StreamTimer t = new StreamTimer(0);
        t.onChunk(1);
        t.onChunk(2);
        return t.finish(p.promptTokens(), 2);
    }

    @Test
    void everyRequestIsSentOnce_outcomesInRequestOrder() {
        List<String> seen = Collections.synchronizedList(new ArrayList<>());
        LoadGenerator.Result r = new LoadGenerator(p -> {
            seen.add(p.text());
            return ok(p);
        }, 0, Duration.ofMinutes(1), d -> { }).run(prompts(20), ArrivalSchedule.immediate(20));

        assertThat(r.timedOut()).isFalse();
        assertThat(r.outcomes()).hasSize(20).allMatch(RequestOutcome::success);
        assertThat(seen).containsExactlyInAnyOrderElementsOf(prompts(20).stream().map(BenchPrompt::text).toList());
    }

    @Test
    void maxConcurrency_boundsRequestsInFlight() {
        AtomicInteger inFlight = new AtomicInteger();
        AtomicInteger peak = new AtomicInteger();
        CountDownLatch firstThreeIn = new CountDownLatch(3);
        LoadGenerator.Result r = new LoadGenerator(p -> {
            peak.accumulateAndGet(inFlight.incrementAndGet(), Math::max);
            firstThreeIn.countDown();
            firstThreeIn.await(); // the first three overlap for sure
            inFlight.decrementAndGet();
            return ok(p);
        }, 3, Duration.ofMinutes(1), d -> { }).run(prompts(12), ArrivalSchedule.immediate(12));

        assertThat(r.outcomes()).allMatch(RequestOutcome::success);
        assertThat(peak.get()).isEqualTo(3);
    }

    @Test
    void senderExceptions_becomeFailedOutcomes() {
        LoadGenerator.Result r = new LoadGenerator(p -> {
            throw new IllegalStateException("boom");
        }, 0, Duration.ofMinutes(1), d -> { }).run(prompts(2), ArrivalSchedule.immediate(2));

        assertThat(r.outcomes()).noneMatch(RequestOutcome::success);
        assertThat(r.outcomes().getFirst().error()).contains("boom");
    }

    @Test
    void timeout_cancelsRequestsInFlight_andFailsThoseNotSent() {
        CountDownLatch never = new CountDownLatch(1);
        double[] arrivals = {0, 0, 3600}; // the third would arrive in an hour
        LoadGenerator.Result r = new LoadGenerator(p -> {
            never.await(); // hangs until interrupted by the timeout
            return ok(p);
        }, 0, Duration.ofMillis(300), d -> { }).run(prompts(3), arrivals);

        assertThat(r.timedOut()).isTrue();
        assertThat(r.outcomes()).hasSize(3).noneMatch(RequestOutcome::success);
        assertThat(r.outcomes()).extracting(RequestOutcome::error)
                .containsExactly("timeout: cancelled in flight", "timeout: cancelled in flight",
                        "timeout: not sent before --timeout");
    }
}
