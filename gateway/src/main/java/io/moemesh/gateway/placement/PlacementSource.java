package io.moemesh.gateway.placement;

import io.moemesh.service.placement.PlacementTable;
import java.util.Optional;

/**
 * Where the gateway learns placement: a file ({@link FilePlacementSource}) or the router's watch stream
 * ({@link RouterPlacementSource}, which may start from a file). The engine thread reads {@link #current()} once
 * per step, so a new epoch takes effect at a step boundary.
 */
public interface PlacementSource {

    /** The newest valid placement; empty while none is known yet. Non-blocking (engine thread). */
    Optional<PlacementTable> current();

    /** Why there is no placement while {@link #current()} is empty, for errors and health ("no expert placement yet"). */
    default String absentReason() {
        return "no expert placement yet";
    }

    /**
     * Why an epoch newer than every one this source took (published by the router) could not be taken, naming it;
     * empty when there is none, or once an epoch at least as new is taken. The expert-services stop answering the
     * epoch in force once their drain grace after the router's switch has passed, so readiness fails on this.
     */
    default Optional<String> unapplied() {
        return Optional.empty();
    }
}
