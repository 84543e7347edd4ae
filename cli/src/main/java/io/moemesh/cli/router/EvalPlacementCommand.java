package io.moemesh.cli.router;

import io.moemesh.router.placement.Placement;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.placement.PlacementEval;
import io.moemesh.router.placement.RoundRobinPlanner;
import io.moemesh.router.placement.RouteStats;
import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TraceReader;
import io.moemesh.service.placement.PlacementFiles;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh router eval-placement}: a placement file scored on a test trace with the gateway's replica rule
 * ({@link PlacementEval}), next to round-robin on the same instances (one copy per expert, as {@code up} deals it).
 */
@Command(name = "eval-placement", mixinStandardHelpOptions = true,
        description = "Score a placement on a test trace (fan-out, load max/mean, cross-instance pairs, replicas) next "
                + "to round-robin.")
final class EvalPlacementCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--placement", required = true, paramLabel = "FILE",
            description = "A placement file (router.v1.Placement JSON, e.g. from `router plan`).")
    Path placementFile;

    @Option(names = "--trace", required = true, paramLabel = "FILE",
            description = "The test trace (Mixtral JSONL or FLAME CSV).")
    Path trace;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        io.moemesh.proto.router.v1.Placement proto = PlacementFiles.read(placementFile);
        RouteTrace t = TraceReader.read(trace);
        Placement placement = PlacementProtos.fromProto(proto, placementFile.toString(), t);
        int n = placement.instances();
        Placement rr = new RoundRobinPlanner().plan(RouteStats.of(t),
                PlacementBudget.slots(n, Math.max(placement.maxSlotsUsed(), (t.experts() + n - 1) / n)),
                placement.instanceIds());
        PlacementEval mine = PlacementEval.score(placement, t);
        PlacementEval base = PlacementEval.score(rr, t);
        out.printf(Locale.ROOT, "Placement %s on %s: %d instances, layers %d..%d, %d experts, %d tokens%n%n",
                placementFile, trace, n, t.firstLayer(), t.layerNumber(t.layers() - 1), t.experts(), t.tokens().size());
        out.println("| placement | fan-out | load max/mean | cross-instance pairs | extra replicas | max experts per instance per layer |");
        out.println("|---|---|---|---|---|---|");
        row(out, placementFile.getFileName().toString(), mine);
        row(out, "round-robin", base);
        out.printf(Locale.ROOT, "%nfan-out %+.1f%%, load max/mean %+.1f%% vs round-robin%n",
                100 * (mine.fanOut() / base.fanOut() - 1), 100 * (mine.loadMaxOverMean() / base.loadMaxOverMean() - 1));
        out.flush();
        return 0;
    }

    private static void row(PrintWriter out, String name, PlacementEval e) {
        out.printf(Locale.ROOT, "| %s | %.2f | %.3f | %.3f | %d | %d |%n", name, e.fanOut(), e.loadMaxOverMean(),
                e.crossPairs(), e.extraReplicas(), e.slotsUsed());
    }
}
