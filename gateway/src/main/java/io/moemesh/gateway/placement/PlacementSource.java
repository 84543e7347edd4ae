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
}
