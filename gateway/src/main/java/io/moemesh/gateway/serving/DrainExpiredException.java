package io.moemesh.gateway.serving;

import java.time.Duration;

/**
 * The gateway is shutting down and its drain grace ended before this request finished: the request is stopped
 * (gRPC: the call's status UNAVAILABLE before the first token, else a last message with
 * {@code FINISH_REASON_CANCELLED} and the error; HTTP: 503, or an SSE error event once streaming). Retryable on
 * another replica.
 */
public final class DrainExpiredException extends RuntimeException {
    public DrainExpiredException(Duration grace) {
        super("the gateway is shutting down and its drain grace (moemesh.gateway.shutdown-grace = " + grace
                + ") ended before this request finished; retry on another replica");
    }
}
