package io.moemesh.cli.bench;

import io.moemesh.router.placement.Placement;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.placement.PlacementEval;
import io.moemesh.router.placement.PlacementPlanner;
import io.moemesh.router.placement.PlacementPlanners;
import io.moemesh.router.placement.RoundRobinPlanner;
import io.moemesh.router.placement.RouteStats;
import io.moemesh.router.placement.SyntheticTraces;
import io.moemesh.router.trace.RouteTrace;
import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench planner}: how long a placement planner takes on route statistics of a large model (issue 10's
 * goal: 256 experts × 60 layers × 64 instances in under 2 s, off the decode path), and what it buys on a held-out
 * trace of the same synthetic distribution. The statistics come from {@link SyntheticTraces#clustered} (groups of 16
 * experts used together, group popularity Zipf-skewed, groups kept across layers, 10% noise), with 25% spare slots
 * (S = ⌈1.25 × experts / instances⌉) as in the placement goals. Only {@code plan} is timed.
 */
@Command(name = "planner", mixinStandardHelpOptions = true,
        description = "Placement planning time on synthetic route statistics (median of N), and fan-out/load on a "
                + "held-out synthetic trace next to round-robin.")
final class PlannerBenchCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--experts", defaultValue = "256", description = "Routed experts per layer (default ${DEFAULT-VALUE}).")
    int experts;

    @Option(names = "--layers", defaultValue = "60", description = "MoE layers (default ${DEFAULT-VALUE}).")
    int layers;

    @Option(names = "--instances", defaultValue = "64", description = "Instances (default ${DEFAULT-VALUE}).")
    int instances;

    @Option(names = "--top-k", defaultValue = "8", description = "Experts per token per layer (default ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--tokens", defaultValue = "4096",
            description = "Synthetic tokens behind the statistics; as many again are held out (default ${DEFAULT-VALUE}).")
    int tokens;

    @Option(names = "--planner", defaultValue = PlacementPlanners.DEFAULT,
            description = "Planner to time (default ${DEFAULT-VALUE}).")
    String planner;

    @Option(names = "--repeats", defaultValue = "5", description = "Timed plans; median shown (default ${DEFAULT-VALUE}).")
    int repeats;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        PlacementPlanner p = PlacementPlanners.named(planner);
        BenchOptions.positive("--experts", experts);
        BenchOptions.positive("--layers", layers);
        BenchOptions.positive("--instances", instances);
        BenchOptions.positive("--tokens", tokens);
        BenchOptions.positive("--repeats", repeats);
        if (topK < 1 || topK > experts) {
            throw new IllegalArgumentException("--top-k must be between 1 and --experts (" + experts + "), got " + topK);
        }
        int groupSize = Math.max(16, topK);
        int groups = Math.max(1, experts / groupSize);
        RouteTrace all = SyntheticTraces.clustered(2 * tokens, layers, experts, topK, groups, 0.1, 42);
        RouteTrace train = new RouteTrace("synthetic train", 0, layers, experts, topK, all.tokens().subList(0, tokens));
        RouteTrace test = new RouteTrace("synthetic test", 0, layers, experts, topK,
                all.tokens().subList(tokens, 2 * tokens));
        RouteStats stats = RouteStats.of(train);
        int slots = (int) Math.ceil(1.25 * experts / instances);
        PlacementBudget budget = PlacementBudget.slots(instances, slots);
        List<String> ids = PlacementPlanners.localIds(instances);
        // One untimed plan: the JIT compiles the planner before the timed ones, as in a long-running router.
        Placement placement = p.plan(stats, budget, ids);
        double[] millis = new double[repeats];
        for (int r = 0; r < repeats; r++) {
            long start = System.nanoTime();
            placement = p.plan(stats, budget, ids);
            millis[r] = (System.nanoTime() - start) / 1e6;
            err.printf(Locale.ROOT, "bench: plan %d: %.0f ms%n", r, millis[r]);
            err.flush();
        }
        PlacementEval mine = PlacementEval.score(placement, test);
        PlacementEval rr = PlacementEval.score(new RoundRobinPlanner().plan(stats, budget, ids), test);
        out.printf(Locale.ROOT, "Placement planning, synthetic routes (%d tokens, groups of %d experts, Zipf "
                + "popularity, 10%% noise), %d slots per instance per layer, median of %d (min–max)%n%n", tokens,
                experts / groups, slots, repeats);
        out.println("| planner | experts × layers × instances | plan, ms | fan-out (round-robin) "
                + "| load max/mean (round-robin) | cross-instance pairs (round-robin) |");
        out.println("|---|---|---|---|---|---|");
        out.printf(Locale.ROOT, "| %s | %d × %d × %d | %s | %.2f (%.2f) | %.3f (%.3f) | %.3f (%.3f) |%n", p.name(), experts,
                layers, instances, Stats.of(millis).cell(), mine.fanOut(), rr.fanOut(), mine.loadMaxOverMean(),
                rr.loadMaxOverMean(), mine.crossPairs(), rr.crossPairs());
        out.flush();
        return 0;
    }
}
