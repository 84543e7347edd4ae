package io.moemesh.cli.mesh;

import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * The process {@code up} leaves behind to restart services that exit ({@link MeshSupervisor}); hidden, since
 * {@code up} starts it and {@code down} stops it.
 */
@Command(name = "supervise", hidden = true, mixinStandardHelpOptions = true,
        description = "Restart the services of the mesh in the state directory when they exit (started by `up`).")
public final class SuperviseCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Mixin
    StateDirOption stateDir = new StateDirOption();

    @Override
    public Integer call() {
        PrintWriter log = spec.commandLine().getOut();
        MeshSupervisor supervisor = new MeshSupervisor(stateDir.resolve(), log);
        // SIGTERM from `down`: finish a restart in progress (so its pid is recorded), then exit.
        Runtime.getRuntime().addShutdownHook(new Thread(supervisor::stop, "moemesh-supervisor-stop"));
        supervisor.run();
        return 0;
    }
}
