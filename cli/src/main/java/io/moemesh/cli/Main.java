package io.moemesh.cli;

import picocli.CommandLine;

/** Entry point of the {@code moemesh} launcher. */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns its exit code (for tests). */
    public static int run(String... args) {
        return new CommandLine(new MoemeshCommand())
                .setExecutionExceptionHandler(new InputErrorHandler())
                .execute(args);
    }
}
