package io.moemesh.cli;

import io.moemesh.cli.bench.BenchCommand;
import io.moemesh.cli.chaos.ChaosCommand;
import io.moemesh.cli.kvcache.KvcacheCommand;
import io.moemesh.cli.mesh.DemoCommand;
import io.moemesh.cli.mesh.DownCommand;
import io.moemesh.cli.mesh.SuperviseCommand;
import io.moemesh.cli.mesh.UpCommand;
import io.moemesh.cli.router.RouterCommand;
import picocli.CommandLine.Command;

@Command(name = "moemesh", mixinStandardHelpOptions = true, versionProvider = VersionProvider.class,
        description = "Serve Mixture-of-Experts language models disaggregated: dense layers in a gateway, experts "
                + "in their own services.",
        subcommands = {GenerateCommand.class, SynthCommand.class, BenchCommand.class, RouterCommand.class,
                UpCommand.class, DownCommand.class, DemoCommand.class, ChaosCommand.class, SuperviseCommand.class,
                KvcacheCommand.class})
final class MoemeshCommand {
}
