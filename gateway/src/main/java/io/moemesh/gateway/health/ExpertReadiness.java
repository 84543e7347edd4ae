package io.moemesh.gateway.health;

import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import io.moemesh.gateway.dispatch.ResilientInstance;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Readiness of the expert tier: every expert of the current placement has a replica that is usable (breaker not
 * open, gRPC health not NOT_SERVING or UNREACHABLE). If one has none, every request whose tokens route to it
 * fails, so the gateway is not ready; the verdict names the first such {@code layer L expert E}.
 */
public final class ExpertReadiness {
    /** Missing experts listed in the details; a dead instance can take hundreds with it. */
    static final int LISTED = 8;
    private final MeshExpertDispatch dispatch;
    private final String absentReason;

    /** @param dispatch the mesh data path; null when experts run in this process (always ready) */
    public ExpertReadiness(MeshExpertDispatch dispatch) {
        this(dispatch, "no placement yet: the gateway does not know where experts live");
    }

    /**
     * @param absentReason the verdict while there is no placement (names the router the gateway waits for)
     */
    public ExpertReadiness(MeshExpertDispatch dispatch, String absentReason) {
        this.dispatch = dispatch;
        this.absentReason = absentReason;
    }

    public Check check() {
        if (dispatch == null) {
            return Check.up("experts run in this process", Map.of());
        }
        if (!dispatch.hasPlacement()) {
            // A placement that came and could not be connected says more than "none yet".
            return Check.down(dispatch.refusedPlacement().orElse(absentReason), Map.of());
        }
        Map<String, Object> instances = new LinkedHashMap<>();
        for (ResilientInstance i : dispatch.instances()) {
            instances.put(i.id(), Map.of("breaker", i.state().name(), "health", i.health().name(),
                    "available", i.available()));
        }
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("epoch", dispatch.epoch());
        dispatch.refusedPlacement().ifPresent(r -> details.put("refusedPlacement", r));
        details.put("instances", instances);
        List<MeshExpertDispatch.MissingExpert> missing = dispatch.missingExperts();
        if (missing.isEmpty()) {
            return Check.up("every expert of placement epoch " + dispatch.epoch() + " has a usable replica", details);
        }
        details.put("missing", missing.stream().limit(LISTED).map(Object::toString).toList());
        details.put("missingCount", missing.size());
        return Check.down(missing.getFirst() + " has no usable replica"
                + (missing.size() > 1 ? " (and " + (missing.size() - 1) + " more experts)" : ""), details);
    }
}
