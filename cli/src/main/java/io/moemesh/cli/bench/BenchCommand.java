package io.moemesh.cli.bench;

import io.moemesh.cli.bench.serve.ServeCommand;
import picocli.CommandLine.Command;

/** {@code moemesh bench}: benchmarks. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmarks: serve (load a running gateway like vLLM's bench serve), mesh (the per-layer hop), "
                + "engine (the single-process engine), kernels (JMH: expert FFN vs OpenBLAS, memory bandwidth), "
                + "prefix (prefix-cache TTFT), planner (placement planning time), prefetch (lookahead prefetch), "
                + "startup (cold start), weights-load (first touch of mapped weights vs the disk), kvcache-attend (Attend "
                + "bytes), kvcache-restore (SSD restore bandwidth), "
                + "kvcache-ttft (TTFT with a restored prefix), grouping (micro-batch grouping by predicted path, "
                + "counted on a routing trace).",
        subcommands = {io.moemesh.cli.bench.mesh.MeshBenchCommand.class, ServeCommand.class, EngineBenchCommand.class,
            KernelBenchCommand.class, PrefixBenchCommand.class, PlannerBenchCommand.class, PrefetchBenchCommand.class,
            StartupBenchCommand.class, KvcacheAttendBenchCommand.class, KvRestoreBenchCommand.class,
            WeightsLoadBenchCommand.class,
            KvTtftBenchCommand.class, GroupingBenchCommand.class})
public final class BenchCommand {
}
