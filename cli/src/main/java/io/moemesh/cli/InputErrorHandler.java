package io.moemesh.cli;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.cli.mesh.MeshException;
import picocli.CommandLine;

/**
 * Bad input (a missing file, a path that cannot be read or written, a malformed checkpoint, an unsupported feature,
 * an out-of-range parameter) is
 * the caller's to fix: one line naming what is wrong, exit code 2, no stack trace. A gRPC status from a mesh
 * is one line with its code: INVALID_ARGUMENT exits 2 (the request was bad), UNAVAILABLE 3 (gateway unreachable
 * or no healthy replica of an expert), any other code 1; a mesh that does not come up also exits 3. Anything
 * else is a bug and keeps its stack trace (exit code 1).
 */
final class InputErrorHandler implements CommandLine.IExecutionExceptionHandler {
    static final int INPUT_ERROR = 2;
    static final int UNAVAILABLE = MeshException.EXIT_CODE;

    @Override
    public int handleExecutionException(Exception e, CommandLine cmd, CommandLine.ParseResult parsed) {
        if (e instanceof StatusRuntimeException s) {
            Status.Code code = s.getStatus().getCode();
            String why = s.getStatus().getDescription() == null ? "" : ": " + s.getStatus().getDescription().replace('\n', ' ');
            // A failure of the transport (connection refused, unknown host, TLS) says only "io exception": the
            // reason is the status's cause, which the line would otherwise drop.
            String cause = rootCause(s.getStatus().getCause());
            if (cause != null && !why.contains(cause)) {
                why += " (" + cause + ")";
            }
            cmd.getErr().println("moemesh " + cmd.getCommandName() + ": " + code + why);
            cmd.getErr().flush();
            return code == Status.Code.INVALID_ARGUMENT ? INPUT_ERROR : code == Status.Code.UNAVAILABLE ? UNAVAILABLE : 1;
        }
        if (e instanceof MeshException) {
            cmd.getErr().println("moemesh " + cmd.getCommandName() + ": " + e.getMessage());
            cmd.getErr().flush();
            return UNAVAILABLE;
        }
        // A file or folder the caller named that cannot be read or written (exists as a file, no permission, ...)
        if (e instanceof IllegalArgumentException || e instanceof java.io.UncheckedIOException
                || e instanceof java.nio.file.FileSystemException) {
            cmd.getErr().println("moemesh " + cmd.getCommandName() + ": " + e.getMessage());
            cmd.getErr().flush();
            return INPUT_ERROR;
        }
        e.printStackTrace(cmd.getErr());
        return 1;
    }

    /** The innermost cause's message (its class name when it has none), or null without a cause. */
    static String rootCause(Throwable t) {
        if (t == null) {
            return null;
        }
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root.getMessage() == null ? root.getClass().getSimpleName() : root.getMessage().replace('\n', ' ');
    }
}
