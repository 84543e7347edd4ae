package io.moemesh.gateway.scheduling;

/**
 * The engine thread is gone (it died of an {@link Error}, or the loop was closed): no sequence makes progress any
 * more, so each one it held ends with this, and every later submit is refused with it (HTTP 503, gRPC UNAVAILABLE).
 * The message says what stopped it in general terms (out of memory, stack overflow, a class that could not be
 * loaded); the Error itself, with its stack, is in the gateway's log.
 */
public final class EngineStoppedException extends RuntimeException {
    EngineStoppedException(String why) {
        super("the engine stopped: " + why);
    }

    /** What ended the engine thread, in words for a client (no class names: those are in the log). */
    static EngineStoppedException of(Throwable error) {
        String why = switch (error) {
            case OutOfMemoryError e -> "out of memory";
            case StackOverflowError e -> "stack overflow";
            case LinkageError e -> "a class it needs could not be loaded";
            default -> "an internal error";
        };
        return new EngineStoppedException(why + "; the gateway must be restarted (its liveness check fails)");
    }
}
