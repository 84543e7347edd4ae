package io.moemesh.gateway.dispatch;

/**
 * The gateway does not know where experts live yet (it follows a router that has not delivered a placement): a
 * generation request is refused with UNAVAILABLE / HTTP 503 before it reaches the engine, and the engine never
 * dispatches without a placement.
 */
public final class NoPlacementException extends RuntimeException {
    public NoPlacementException(String message) {
        super(message);
    }
}
