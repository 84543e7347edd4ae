package io.moemesh.cli.router;

import io.moemesh.cli.bench.BenchOptions;
import io.moemesh.router.placement.Placement;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.placement.PlacementPlanner;
import io.moemesh.router.placement.PlacementPlanners;
import io.moemesh.router.placement.RouteStats;
import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TraceReader;
import io.moemesh.service.placement.PlacementFiles;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh router plan}: a placement planned from a routing trace, written as the JSON form of
 * {@code router.v1.Placement} (epoch 1): exactly N instances {@code expert-0} .. {@code expert-(N-1)}, at most S
 * experts per instance per layer, every expert of every layer of the trace at least once, only the trace's layers,
 * numbered as in the trace.
 */
@Command(name = "plan", mixinStandardHelpOptions = true,
        description = "Plan a placement from a routing trace and write it as router.v1.Placement JSON.")
final class PlanCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--trace", required = true, paramLabel = "FILE",
            description = "Routing trace to fit (Mixtral JSONL or FLAME CSV, detected from the content).")
    Path trace;

    @Option(names = "--instances", required = true, paramLabel = "N", description = "Expert-service instances.")
    int instances;

    @Option(names = "--slots-per-instance", required = true, paramLabel = "S",
            description = "Experts one instance holds per layer at most (N × S ≥ experts; spare slots hold replicas).")
    int slots;

    @Option(names = "--planner", defaultValue = PlacementPlanners.DEFAULT, paramLabel = "NAME",
            description = "affinity, affinity-stats or round-robin (default ${DEFAULT-VALUE}).")
    String planner;

    @Option(names = "--memory-budget", defaultValue = "0", paramLabel = "BYTES",
            description = "Expert-weight bytes per instance, spread evenly over the layers (0: slots only).")
    long memoryBudget;

    @Option(names = "--expert-bytes", defaultValue = "0", paramLabel = "B",
            description = "Bytes of one expert's weights (required with --memory-budget).")
    long expertBytes;

    @Option(names = "--endpoints", split = ",", paramLabel = "HOST:PORT",
            description = "The N instances' gRPC endpoints, in order (default 127.0.0.1:7101, :7102, …).")
    List<String> endpoints;

    @Option(names = "--out", required = true, paramLabel = "FILE", description = "Where to write the placement JSON.")
    Path out;

    @Override
    public Integer call() {
        PrintWriter stdout = spec.commandLine().getOut();
        PlacementPlanner p = PlacementPlanners.named(planner);
        PlacementBudget budget = new PlacementBudget(instances, slots, memoryBudget, expertBytes);
        List<String> eps = endpoints();
        RouteTrace t = TraceReader.read(trace);
        RouteStats stats = RouteStats.of(t);
        long start = System.nanoTime();
        Placement placement = p.plan(stats, budget, PlacementPlanners.localIds(instances));
        double millis = (System.nanoTime() - start) / 1e6;
        PlacementFiles.write(out, PlacementProtos.toProto(placement, 1, eps, memoryBudget));
        stdout.printf(Locale.ROOT, "placement: %s (planner %s, %d instances, layers %d..%d, %d experts, at most %d per "
                        + "instance per layer, %d extra replicas, planned in %.0f ms)%n", out, p.name(), instances,
                t.firstLayer(), t.layerNumber(t.layers() - 1), t.experts(), placement.maxSlotsUsed(),
                placement.extraReplicas(), millis);
        stdout.flush();
        return 0;
    }

    private List<String> endpoints() {
        BenchOptions.positive("--instances", instances);
        if (endpoints == null) {
            List<String> eps = new ArrayList<>();
            for (int i = 0; i < instances; i++) {
                eps.add("127.0.0.1:" + (7101 + i));
            }
            return eps;
        }
        if (endpoints.size() != instances) {
            throw new IllegalArgumentException("--endpoints needs one HOST:PORT per instance (" + instances + "), got "
                    + endpoints.size());
        }
        for (String e : endpoints) {
            if (!e.matches("[^:\\s]+:\\d{1,5}") && !e.matches("\\[[0-9a-fA-F:.]+]:\\d{1,5}")) {
                throw new IllegalArgumentException("--endpoints takes HOST:PORT, got \"" + e + "\"");
            }
        }
        return endpoints;
    }
}
