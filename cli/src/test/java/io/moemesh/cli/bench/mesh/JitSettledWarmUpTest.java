package io.moemesh.cli.bench.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class JitSettledWarmUpTest {

    /** Snapshots where, per run, the compiler thread gains {@code jit[i]} ticks and the worker 100 - jit[i]. */
    private static Iterator<ThreadCpu> snapshots(int... jitTicksPerRun) {
        List<ThreadCpu> out = new ArrayList<>();
        long jit = 0;
        long work = 0;
        for (int j : jitTicksPerRun) {
            out.add(snapshot(jit, work)); // before the run
            jit += j;
            work += 100 - j;
            out.add(snapshot(jit, work)); // after it
        }
        return out.iterator();
    }

    private static ThreadCpu snapshot(long jitTicks, long workTicks) {
        return new ThreadCpu(Map.of(
                "gateway/11", new ThreadCpu.Thread("gateway", ThreadCpu.kind("C2 CompilerThre"), jitTicks, 0),
                "gateway/12", new ThreadCpu.Thread("gateway", ThreadCpu.kind("engine-loop"), workTicks, 0)));
    }

    @ParameterizedTest(name = "jit ticks per run {0} → {1} runs")
    @CsvSource({
            "'30,10,4,1', 3",     // the third run is under 5%: measured after it
            "'0', 1",             // settled from the start: one run
            "'4,50', 1",          // a settled run ends the warm-up even if later runs would compile again
            "'60,60,60,60,60,60,60,60,60,60', 8", // never settles: bounded
    })
    void run_repeatsUntilCompilerShareUnderFivePercent_bounded(String perRun, int expectedRuns) throws Exception {
        int[] jit = java.util.Arrays.stream(perRun.split(",")).mapToInt(Integer::parseInt).toArray();
        Iterator<ThreadCpu> it = snapshots(jit);
        List<Integer> rounds = new ArrayList<>();
        JitSettledWarmUp.Outcome o = JitSettledWarmUp.run(it::next, rounds::add);
        assertThat(o.runs()).isEqualTo(expectedRuns);
        assertThat(rounds).as("each run gets its own round (own prompts)").containsExactlyElementsOf(
                java.util.stream.IntStream.range(0, expectedRuns).boxed().toList());
        assertThat(o.lastJitShare()).isCloseTo(jit[expectedRuns - 1] / 100.0, org.assertj.core.data.Offset.offset(1e-9));
    }

    @Test
    void jitShare_countsC1AndC2CompilerThreadsOnly_zeroWithoutCpu() {
        List<ThreadCpu.Use> uses = List.of(
                new ThreadCpu.Use("expert-0", ThreadCpu.kind("C1 CompilerThre"), 0.1, 0),
                new ThreadCpu.Use("expert-0", ThreadCpu.kind("C2 CompilerThre"), 0.2, 0),
                new ThreadCpu.Use("expert-0", ThreadCpu.kind("grpc-default-worker-ELG-1-1"), 0.7, 0));
        assertThat(JitSettledWarmUp.jitShare(uses)).isCloseTo(0.3, org.assertj.core.data.Offset.offset(1e-9));
        assertThat(JitSettledWarmUp.jitShare(List.of())).isZero();
    }

    @Test
    void prompts_warmUpRoundsDifferFromEachOtherAndFromTheMeasuredRun() {
        int[][] w0 = DecodeComparison.prompts(4, 1000, DecodeComparison.Phase.WARM_UP, 0);
        int[][] w1 = DecodeComparison.prompts(4, 1000, DecodeComparison.Phase.WARM_UP, 1);
        int[][] m = DecodeComparison.prompts(4, 1000, DecodeComparison.Phase.MEASURED, 0);
        assertThat(java.util.Arrays.deepEquals(w0, w1)).isFalse();
        assertThat(java.util.Arrays.deepEquals(w0, m)).isFalse();
        assertThat(java.util.Arrays.deepEquals(w1, m)).isFalse();
        assertThat(DecodeComparison.prompts(4, 1000, DecodeComparison.Phase.WARM_UP, 1)).isDeepEqualTo(w1);
    }
}
