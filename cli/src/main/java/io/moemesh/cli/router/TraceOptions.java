package io.moemesh.cli.router;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TraceReader;
import java.nio.file.Path;

/** Reading a trace named by an option, so that every refusal names the option too. */
record TraceOptions(String option, Path path) {

    /** The trace at {@link #path}, or an IllegalArgumentException starting with the option's name. */
    RouteTrace read() {
        if (path == null) {
            throw new IllegalArgumentException(option + " FILE is required");
        }
        try {
            return TraceReader.read(path);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(option + ": " + e.getMessage(), e);
        }
    }
}
