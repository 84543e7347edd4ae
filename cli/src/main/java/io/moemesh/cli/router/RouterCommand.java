package io.moemesh.cli.router;

import picocli.CommandLine.Command;

/** {@code moemesh router}: the router's offline tools on routing traces. */
@Command(name = "router", mixinStandardHelpOptions = true,
        description = "The pre-gating router's offline tools: plan a placement from a routing trace (plan) and score "
                + "one on a test trace next to round-robin (eval-placement).",
        subcommands = {PlanCommand.class, EvalPlacementCommand.class})
public final class RouterCommand {
}
