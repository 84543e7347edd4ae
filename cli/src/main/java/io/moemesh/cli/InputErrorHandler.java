package io.moemesh.cli;

import picocli.CommandLine;

/**
 * Bad input (a missing file, a malformed checkpoint, an unsupported feature, an out-of-range parameter) is
 * the caller's to fix: one line naming what is wrong, exit code 2, no stack trace. Anything else is a bug and
 * keeps its stack trace (exit code 1).
 */
final class InputErrorHandler implements CommandLine.IExecutionExceptionHandler {
    static final int INPUT_ERROR = 2;

    @Override
    public int handleExecutionException(Exception e, CommandLine cmd, CommandLine.ParseResult parsed) {
        if (e instanceof IllegalArgumentException || e instanceof java.io.UncheckedIOException) {
            cmd.getErr().println("moemesh " + cmd.getCommandName() + ": " + e.getMessage());
            cmd.getErr().flush();
            return INPUT_ERROR;
        }
        e.printStackTrace(cmd.getErr());
        return 1;
    }
}
