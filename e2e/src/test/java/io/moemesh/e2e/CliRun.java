package io.moemesh.e2e;

import io.moemesh.cli.Main;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import picocli.CommandLine;

/** One {@code moemesh} command run in this JVM on a mesh's state folder: its exit code, stdout and stderr. */
record CliRun(int exit, String out, String err) {

    /** Runs {@code moemesh ARGS --state-dir DIR} (its mesh.json names the services, its tls/ the placer). */
    static CliRun on(Path stateDir, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cmd = Main.commandLine();
        cmd.setOut(new PrintWriter(out, true));
        cmd.setErr(new PrintWriter(err, true));
        String[] all = new String[args.length + 2];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = "--state-dir";
        all[args.length + 1] = stateDir.toString();
        return new CliRun(cmd.execute(all), out.toString(), err.toString());
    }
}
