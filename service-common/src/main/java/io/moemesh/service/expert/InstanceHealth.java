package io.moemesh.service.expert;

/**
 * What the gateway knows of an expert-service instance from its gRPC health service ({@code grpc.health.v1.Health},
 * service {@code ""}): the data path skips an instance that is known to be down, so no request pays a failed
 * call to find out.
 */
public enum InstanceHealth {
    /** Nothing known yet (no answer so far, or the instance serves no gRPC health): calls may go to it. */
    UNKNOWN,
    /** The instance reports SERVING. */
    SERVING,
    /** The instance reports NOT_SERVING (it is shutting down) or does not know the service "". */
    NOT_SERVING,
    /** Its health watch keeps failing: the instance cannot be reached (refused, reset, unresolvable). */
    UNREACHABLE;

    /** Whether calls may be routed to the instance: nothing says it is down. */
    public boolean usable() {
        return this == UNKNOWN || this == SERVING;
    }
}
