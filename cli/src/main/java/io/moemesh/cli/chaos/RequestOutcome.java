package io.moemesh.cli.chaos;

/**
 * One finished request of a chaos run, times in seconds since the run started.
 *
 * @param error     null when the call succeeded; else the gRPC status code and message (or the exception)
 * @param tokensOk  the generated ids equal the reference engine's (false for a failed call)
 */
public record RequestOutcome(double start, double end, String error, boolean tokensOk) {

    public boolean failed() {
        return error != null;
    }

    public double millis() {
        return (end - start) * 1000;
    }
}
