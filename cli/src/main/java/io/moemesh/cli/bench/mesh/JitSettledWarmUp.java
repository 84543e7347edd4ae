package io.moemesh.cli.bench.mesh;

import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Warm-up runs repeated until the JIT has settled: at least a minimum number of runs (enough decoded tokens, below),
 * then until HotSpot's compiler threads (C1 and C2, named {@code C1 CompilerThre}/{@code C2 CompilerThre} in /proc,
 * kind {@code C# CompilerThre}) used under {@link #SETTLED_SHARE} of the processes' CPU in {@link #QUIET_RUNS}
 * runs in a row, at most {@link #MAX_RUNS} runs. Both sides get the same rule.
 *
 * <p>Why the minimum and the runs in a row: the mesh's services start with late C2 outside their serving path and
 * C1 at HotSpot's counts (docs/performance.md, Cold start), so code that runs once per request or per call (the
 * gRPC Generate handling, the dispatch's maps) reaches C1 and C2 only after many requests, in bursts between
 * quiet runs. Measured on synth M at one sequence (2026-12-06, HTTP, 128 tokens per request): the mesh went from 29
 * to 47 tok/s over its first 12 requests, 54-63 over the next 12, 59-66 over the 12 after, and
 * {@code -XX:+PrintCompilation} showed the gateway making 832 C2 and 2,187 C1 compilations during requests 4-15; the
 * compiler share alone (one run under 5%) had ended the warm-up after 8-9 runs, at 43-48 tok/s.
 */
final class JitSettledWarmUp {
    /** A run whose compiler threads used less than this share of its CPU counts as quiet. */
    static final double SETTLED_SHARE = 0.05;
    /** Quiet runs in a row that end the warm-up (once {@code minRuns} ran). */
    static final int QUIET_RUNS = 2;
    /** Bound on warm-up runs (a JIT that never settles must not keep the bench running). */
    static final int MAX_RUNS = 48;
    /** Decoded tokens every side's warm-up makes at least: 32 runs at one sequence, one at 32 sequences. */
    static final int MIN_TOKENS = 4096;

    /** One warm-up run on the prompts of round {@code round} (0, 1, …: each round its own prompts). */
    @FunctionalInterface
    interface Run {
        void run(int round) throws Exception;
    }

    /** How many warm-up runs were made and the compiler threads' share of the last one's CPU. */
    record Outcome(int runs, double lastJitShare) {
    }

    private JitSettledWarmUp() {
    }

    /** Runs that decode at least {@link #MIN_TOKENS} tokens when each decodes {@code tokensPerRun}. */
    static int minRuns(int tokensPerRun) {
        if (tokensPerRun < 1) {
            throw new IllegalArgumentException("tokensPerRun must be >= 1, got " + tokensPerRun);
        }
        return Math.min(MAX_RUNS, (MIN_TOKENS + tokensPerRun - 1) / tokensPerRun);
    }

    /**
     * Runs {@code run} until the compiler threads of {@code pids} (name → pid) settled, or {@link #MAX_RUNS}; the hop
     * table uses it too, a run being {@code --warmup} round trips.
     */
    static Outcome run(Map<String, Long> pids, int minRuns, Run run) throws Exception {
        return run(() -> ThreadCpu.of(pids), minRuns, run);
    }

    /** {@link #run(Map, int, Run)} with the snapshots taken by {@code snapshot} (before and after each run). */
    static Outcome run(Supplier<ThreadCpu> snapshot, int minRuns, Run run) throws Exception {
        double share = 1;
        int runs = 0;
        int quiet = 0;
        while (runs < MAX_RUNS && (runs < minRuns || quiet < QUIET_RUNS)) {
            ThreadCpu before = snapshot.get();
            run.run(runs);
            share = jitShare(snapshot.get().minus(before));
            quiet = share < SETTLED_SHARE ? quiet + 1 : 0;
            runs++;
        }
        return new Outcome(runs, share);
    }

    /** The compiler threads' share of {@code uses}' CPU; 0 when nothing was used (or off Linux). */
    static double jitShare(List<ThreadCpu.Use> uses) {
        double total = ThreadCpu.total(uses);
        if (total <= 0) {
            return 0;
        }
        double jit = uses.stream().filter(u -> isCompiler(u.kind())).mapToDouble(ThreadCpu.Use::cpuSeconds).sum();
        return jit / total;
    }

    /** Whether a thread kind ({@link ThreadCpu#kind}) is one of HotSpot's JIT compiler threads. */
    static boolean isCompiler(String kind) {
        return kind.startsWith("C# CompilerThre");
    }
}
