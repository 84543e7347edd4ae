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

    @ParameterizedTest(name = "jit ticks per run {0}, at least {1} runs → {2} runs")
    @CsvSource({
            "'30,10,4,1', 1, 4",      // two quiet runs in a row (the third and fourth): measured after them
            "'0,0', 1, 2",            // settled from the start: the two quiet runs
            "'4,50,3,2', 1, 4",       // a compile burst after a quiet run starts the count again
            "'0,0,0,0,0', 5, 5",      // the minimum runs (enough decoded tokens) even when quiet earlier
            "'0,0,0,9,0,0', 4, 6",    // past the minimum, still two quiet runs in a row
    })
    void run_repeatsUntilTwoQuietRunsInARow_afterTheMinimum(String perRun, int minRuns, int expectedRuns)
            throws Exception {
        int[] jit = java.util.Arrays.stream(perRun.split(",")).mapToInt(Integer::parseInt).toArray();
        Iterator<ThreadCpu> it = snapshots(jit);
        List<Integer> rounds = new ArrayList<>();
        JitSettledWarmUp.Outcome o = JitSettledWarmUp.run(it::next, minRuns, rounds::add);
        assertThat(o.runs()).isEqualTo(expectedRuns);
        assertThat(rounds).as("each run gets its own round (own prompts)").containsExactlyElementsOf(
                java.util.stream.IntStream.range(0, expectedRuns).boxed().toList());
        assertThat(o.lastJitShare()).isCloseTo(jit[expectedRuns - 1] / 100.0, org.assertj.core.data.Offset.offset(1e-9));
    }

    @Test
    void run_neverSettling_isBounded() throws Exception {
        int[] jit = new int[JitSettledWarmUp.MAX_RUNS + 5];
        java.util.Arrays.fill(jit, 60);
        JitSettledWarmUp.Outcome o = JitSettledWarmUp.run(snapshots(jit)::next, 1, round -> { });
        assertThat(o.runs()).isEqualTo(JitSettledWarmUp.MAX_RUNS);
    }

    @ParameterizedTest(name = "{0} tokens per run → at least {1} runs")
    @CsvSource({"128, 32", "4096, 1", "100, 41", "1, 48"})
    void minRuns_coversTheMinimumTokens_bounded(int tokensPerRun, int runs) {
        assertThat(JitSettledWarmUp.minRuns(tokensPerRun)).isEqualTo(runs);
    }

    @Test
    void minRuns_refusesRunsWithoutTokens() {
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> JitSettledWarmUp.minRuns(0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("tokensPerRun must be >= 1, got 0");
    }

    @Test
    void sum_addsEachServiceAndKindOverIntervals() {
        List<ThreadCpu.Use> a = List.of(new ThreadCpu.Use("expert-0", "grpc-uds-#-#", 0.5, 10),
                new ThreadCpu.Use("gateway", "moemesh-engine", 1.0, 4));
        List<ThreadCpu.Use> b = List.of(new ThreadCpu.Use("expert-0", "grpc-uds-#-#", 0.25, 6));
        assertThat(ThreadCpu.sum(List.of(a, b))).containsExactly(
                new ThreadCpu.Use("expert-0", "grpc-uds-#-#", 0.75, 16),
                new ThreadCpu.Use("gateway", "moemesh-engine", 1.0, 4));
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
    void prompts_warmUpRunsAndMeasuredRoundsAllDiffer() {
        int[][] w0 = DecodeComparison.prompts(4, 1000, DecodeComparison.Phase.WARM_UP, 0);
        int[][] w1 = DecodeComparison.prompts(4, 1000, DecodeComparison.Phase.WARM_UP, 1);
        int[][] m = DecodeComparison.prompts(4, 1000, DecodeComparison.Phase.MEASURED, 0);
        int[][] m1 = DecodeComparison.prompts(4, 1000, DecodeComparison.Phase.MEASURED, 1);
        assertThat(java.util.Arrays.deepEquals(w0, w1)).isFalse();
        assertThat(java.util.Arrays.deepEquals(w0, m)).isFalse();
        assertThat(java.util.Arrays.deepEquals(w1, m)).isFalse();
        assertThat(java.util.Arrays.deepEquals(m, m1)).as("each measured round its own prompts").isFalse();
        assertThat(DecodeComparison.prompts(4, 1000, DecodeComparison.Phase.WARM_UP, 1)).isDeepEqualTo(w1);
    }
}
