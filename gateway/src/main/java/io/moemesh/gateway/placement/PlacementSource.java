package io.moemesh.gateway.placement;

import io.moemesh.service.placement.PlacementTable;
import java.util.Optional;

/**
 * Where the gateway learns placement: a file now, the router's watch stream later. The engine thread reads
 * {@link #current()} once per step, so a new epoch takes effect at a step boundary.
 */
public interface PlacementSource {

    /** The newest valid placement; empty when experts run in-process. */
    Optional<PlacementTable> current();
}
