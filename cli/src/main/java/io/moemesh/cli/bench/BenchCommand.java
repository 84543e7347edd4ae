package io.moemesh.cli.bench;

import io.moemesh.cli.bench.serve.ServeCommand;
import picocli.CommandLine.Command;

/** {@code moemesh bench}: benchmarks. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmarks: serve (load a running gateway like vLLM's bench serve).",
        subcommands = {ServeCommand.class})
public final class BenchCommand {
}
