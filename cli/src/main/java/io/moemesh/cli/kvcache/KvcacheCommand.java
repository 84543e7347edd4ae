package io.moemesh.cli.kvcache;

import picocli.CommandLine.Command;

/** {@code moemesh kvcache}: the KV-cache service's offline tools. */
@Command(name = "kvcache", mixinStandardHelpOptions = true,
        description = "The KV-cache service's offline tools: replay (a prefix-cache trace through the real tiered "
                + "store, next to LRU and Belady MIN).",
        subcommands = {ReplayCommand.class})
public final class KvcacheCommand {
}
