package io.moemesh.cli.router;

import picocli.CommandLine.Command;

/** {@code moemesh router}: the running mesh's router-service, and the router's offline tools on routing traces. */
@Command(name = "router", mixinStandardHelpOptions = true,
        description = "The pre-gating router. Of the running mesh: replan (plan, load and publish a new placement "
                + "epoch) and describe (its state). Offline, on routing traces: eval-predict (expert-path prediction "
                + "recall), split-trace (a train/test split of one trace file), plan (a placement from a trace) and "
                + "eval-placement (a placement scored on a test trace next to round-robin).",
        subcommands = {ReplanCommand.class, DescribeCommand.class, EvalPredictCommand.class, SplitTraceCommand.class,
                PlanCommand.class, EvalPlacementCommand.class})
public final class RouterCommand {
}
