package io.moemesh.cli;

import picocli.CommandLine;

/** Entry point of the {@code moemesh} launcher. */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line; tests set its out/err writers and call {@code execute}. */
    public static CommandLine commandLine() {
        return new CommandLine(new MoemeshCommand()).setExecutionExceptionHandler(new InputErrorHandler());
    }
}
