package io.moemesh.cli.router;

import picocli.CommandLine.Command;

/** {@code moemesh router}: the router's offline tools on routing traces. */
@Command(name = "router", mixinStandardHelpOptions = true,
        description = "The router's offline tools on routing traces: eval-predict (expert-path prediction recall), "
                + "split-trace (a train/test split of one trace file).",
        subcommands = {EvalPredictCommand.class, SplitTraceCommand.class})
public final class RouterCommand {
}
