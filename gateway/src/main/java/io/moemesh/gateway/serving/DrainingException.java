package io.moemesh.gateway.serving;

/** The gateway is shutting down and admits nothing new (HTTP 503, UNAVAILABLE). */
public final class DrainingException extends RuntimeException {
    public DrainingException() {
        super("the gateway is shutting down and admits no new requests; retry on another replica");
    }
}
