package io.moemesh.cli.chaos;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class ChaosReportTest {

    @Test
    void render_countsNextToTheLatencyPercentiles_areTheFinishedRequestsTheyAreOver() {
        ChaosPlan plan = new ChaosPlan(8, Duration.ofSeconds(60), Duration.ofSeconds(15), Duration.ofSeconds(10), 4, 1,
                32, Duration.ofSeconds(60));
        // After the 10 s warm-up: 3 finished and 1 failed in steady state, 1 finished during the fault (t 30-35 s).
        List<RequestOutcome> requests = List.of(
                new RequestOutcome(5, 6, null, true),
                new RequestOutcome(11, 12, null, true),
                new RequestOutcome(13, 14, null, true),
                new RequestOutcome(15, 16, null, true),
                new RequestOutcome(17, 18, "UNAVAILABLE", true),
                new RequestOutcome(31, 32, null, true));
        Kill kill = new Kill("expert-0", 42, 30, 31, 33, 35);
        String out = new ChaosReport(plan, requests, List.of(kill), 60).render();
        assertThat(out).contains("all (4) p50").contains("steady (3) p50").contains("during faults (1) p50");
    }
}
