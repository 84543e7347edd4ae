package io.moemesh.cli.bench.mesh;

import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Warm-up runs repeated until the JIT has settled: until HotSpot's compiler threads (C1 and C2, named
 * {@code C1 CompilerThre}/{@code C2 CompilerThre} in /proc, kind {@code C# CompilerThre}) used under
 * {@link #SETTLED_SHARE} of the processes' CPU during a run, at most {@link #MAX_RUNS} runs. One fixed warm-up run
 * is not enough for a comparison of one JVM with three: the mesh's JVMs have the gRPC, protobuf and dispatch paths
 * to compile beside the kernels, and measured after one run they were still compiling (at one sequence 28% of the
 * mesh's CPU in the measured run was its compiler threads, docs/performance.md), so the ratio measured the JIT's
 * progress, not the mesh's overhead. Both sides get the same rule.
 */
final class JitSettledWarmUp {
    /** A run whose compiler threads used less than this share of its CPU counts as steady state. */
    static final double SETTLED_SHARE = 0.05;
    /** Bound on warm-up runs (a JIT that never settles must not keep the bench running). */
    static final int MAX_RUNS = 8;

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

    /** Runs {@code run} until the compiler threads of {@code pids} (name → pid) settled, or {@link #MAX_RUNS}. */
    static Outcome run(Map<String, Long> pids, Run run) throws Exception {
        return run(() -> ThreadCpu.of(pids), run);
    }

    /** {@link #run(Map, Run)} with the snapshots taken by {@code snapshot} (before and after each run). */
    static Outcome run(Supplier<ThreadCpu> snapshot, Run run) throws Exception {
        double share = 1;
        int runs = 0;
        while (runs < MAX_RUNS && share >= SETTLED_SHARE) {
            ThreadCpu before = snapshot.get();
            run.run(runs);
            share = jitShare(snapshot.get().minus(before));
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
