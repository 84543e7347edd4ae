package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.chaos.ChaosPlan;
import io.moemesh.cli.chaos.ChaosPrompt;
import io.moemesh.cli.chaos.ChaosReport;
import io.moemesh.cli.chaos.ChaosRun;
import io.moemesh.cli.chaos.Kill;
import io.moemesh.cli.chaos.ReferenceCompletions;
import io.moemesh.cli.mesh.MeshSpec;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.golden.TestModels;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The short version of {@code moemesh chaos}: four greedy streams through a supervised mesh of three instances
 * holding every expert twice, while each instance in turn is SIGKILLed (the other replica of each of its experts
 * stays alive) and restarted by the supervisor.
 */
class ChaosTest {
    private static final String MODEL = TestModels.MIXTRAL_BF16;

    @Test
    void killingEachInstanceInTurnUnderLoad_failsNoRequest_changesNoToken_andTheRestartedInstanceCarriesTrafficAgain() {
        List<ChaosPrompt> prompts = ReferenceCompletions.compute(TestModels.dir(MODEL), ReferenceCompletions.DEFAULT_PROMPTS, 16);
        // kill-every 1 s: the next kill follows as soon as the previous victim carries traffic again
        ChaosPlan plan = new ChaosPlan(4, Duration.ofMinutes(8), Duration.ofSeconds(1), Duration.ofSeconds(3), 3, 7, 16,
                Duration.ofMinutes(3));
        try (RunningMesh mesh = TestMeshes.start("chaos", MODEL, 3, 2, List.of(), MeshSpec.RestartPolicy.ALWAYS)) {
            ChaosReport r = new ChaosRun(mesh, prompts, plan, new PrintWriter(System.err, true)).run();
            System.err.print(r.render());
            assertThat(r.kills()).extracting(Kill::instance).as("each instance killed once")
                    .containsExactlyInAnyOrder("expert-0", "expert-1", "expert-2");
            assertThat(r.finished()).as("requests finished").isPositive();
            assertThat(r.failures()).as("failed requests").isEmpty();
            assertThat(r.tokenDifferences()).as("requests whose tokens differ from the reference engine's").isZero();
            assertThat(r.kills()).allSatisfy(k -> {
                assertThat(k.recovered()).as("%s carries traffic again", k.instance()).isTrue();
                assertThat(k.trafficAfterServing()).as("%s: seconds from SERVING to its first batch", k.instance())
                        .isLessThanOrEqualTo(ChaosReport.TRAFFIC_GOAL_SECONDS);
            });
            assertThat(r.requests().stream().filter(x -> x.start() > r.kills().getLast().trafficAt()).count())
                    .as("requests after the last recovery").isPositive();
        }
    }
}
