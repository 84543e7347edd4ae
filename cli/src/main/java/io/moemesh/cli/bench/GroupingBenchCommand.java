package io.moemesh.cli.bench;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TraceReader;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code moemesh bench grouping}: the micro-batch grouping option ({@code moemesh.gateway.micro-batch-grouping})
 * measured by counting on a real routing trace ({@link GroupingEval}): expert calls and instance calls per decode
 * step with the contiguous split, with sequences grouped by predicted path, and with the true path (the bound).
 */
@Command(name = "grouping", mixinStandardHelpOptions = true,
        description = "Expert and instance calls per decode step of ping-pong micro-batches, contiguous vs grouped by "
                + "predicted expert path (ExpertFlow's token scheduling; predictor: the sequence's previous token), "
                + "counted on a routing trace whose tokens name their sequence (Mixtral JSONL, FLAME decode CSV).")
public final class GroupingBenchCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Option(names = "--trace", paramLabel = "FILE", required = true, description = "The routing trace (read by path).")
    Path trace;

    @Option(names = "--micro-batches", paramLabel = "N", description = "Micro-batches per step (default 2).")
    int microBatches = 2;

    @Option(names = "--segments", paramLabel = "N", description = "Cut each of the trace's token streams into N "
            + "contiguous sequences (default 1; a Mixtral trace has 2 streams).")
    int segments = 1;

    @Option(names = "--sequences", paramLabel = "N", description = "At most N sequences, the first (default: all).")
    int sequences = 0;

    @Option(names = "--instances", paramLabel = "N,N", split = ",",
            description = "Expert-service counts to place the experts on (default 2,4).")
    int[] instances = {2, 4};

    @Override
    public Integer call() {
        if (microBatches < 2) {
            throw new IllegalArgumentException("--micro-batches must be at least 2, got " + microBatches);
        }
        if (segments < 1) {
            throw new IllegalArgumentException("--segments must be at least 1, got " + segments);
        }
        if (sequences < 0) {
            throw new IllegalArgumentException("--sequences must be at least 0 (0 = all), got " + sequences);
        }
        if (Arrays.stream(instances).anyMatch(i -> i < 1)) {
            throw new IllegalArgumentException("--instances must all be at least 1, got " + Arrays.toString(instances));
        }
        RouteTrace t;
        try {
            t = TraceReader.read(trace);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--trace: " + e.getMessage(), e);
        }
        GroupingEval.Result r = GroupingEval.run(t, microBatches, segments, sequences, instances);
        if (r.steps() == 0) {
            throw new IllegalArgumentException("--trace: no decode step of at least 2 sequences with full paths in "
                    + trace);
        }
        print(spec.commandLine().getOut(), t, r);
        return 0;
    }

    private void print(PrintWriter out, RouteTrace t, GroupingEval.Result r) {
        out.printf(Locale.ROOT, "%s: %d sequences, %d decode steps (%d sequence-steps), %d MoE layers, top-%d of %d "
                        + "experts, %d micro-batches per step%n", t.source(), r.sequences(), r.steps(),
                r.sequenceSteps(), t.layers(), t.topK(), t.experts(), microBatches);
        out.printf(Locale.ROOT, "Path locality: %.3f of a token's (layer, expert) pairs were its previous token's too "
                + "(the predictor's recall).%n", r.locality());
        out.printf(Locale.ROOT, "One batch per step (no micro-batches): %.2f expert calls per step.%n%n",
                (double) r.oneBatchExperts() / r.steps());
        StringBuilder header = new StringBuilder("| grouping | expert calls per step | ÷ contiguous |");
        StringBuilder rule = new StringBuilder("|---|---|---|");
        for (int n : r.instances()) {
            header.append(" instance calls per step (").append(n).append(" instances) | ÷ contiguous |");
            rule.append("---|---|");
        }
        out.println(header);
        out.println(rule);
        for (int g = 0; g < GroupingEval.GROUPINGS.size(); g++) {
            StringBuilder row = new StringBuilder("| ").append(GroupingEval.GROUPINGS.get(g)).append(" | ");
            row.append(String.format(Locale.ROOT, "%.2f | %.3f |", (double) r.expertCalls()[g] / r.steps(),
                    (double) r.expertCalls()[g] / r.expertCalls()[0]));
            for (int k = 0; k < r.instances().length; k++) {
                row.append(String.format(Locale.ROOT, " %.2f | %.3f |", (double) r.instanceCalls()[g][k] / r.steps(),
                        (double) r.instanceCalls()[g][k] / r.instanceCalls()[0][k]));
            }
            out.println(row);
        }
        out.println();
        out.println("expert calls: Σ over micro-batches and MoE layers of the distinct experts its tokens use (one "
                + "expert GEMM each); instance calls: of the distinct expert-services holding them (one ExpertBatch "
                + "hop each), experts placed as `moemesh up` places them. oracle: grouped by the true path (the bound).");
        out.flush();
    }
}
