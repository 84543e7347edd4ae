package io.moemesh.gateway.health;

import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import io.moemesh.gateway.dispatch.ResilientInstance;
import io.moemesh.gateway.placement.PlacementSource;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Supplier;

/**
 * Readiness of the expert tier: every expert of the current placement has a replica that is usable (breaker not
 * open, gRPC health not NOT_SERVING or UNREACHABLE). If one has none, every request whose tokens route to it
 * fails, so the gateway is not ready; the verdict names the first such {@code layer L expert E}.
 *
 * <p>Nor is it ready while the router has published an epoch this gateway could not apply (it does not fit the
 * model: {@link PlacementSource#unapplied()}; or its instances could not be connected:
 * {@link MeshExpertDispatch#refusedPlacement()}): the router COMMITs each epoch right after publishing it, and the
 * instances refuse the epoch in force once their drain grace after that has passed, so every step would fail soon.
 * The verdict names the epoch and why; it is ready again once an epoch is applied.
 */
public final class ExpertReadiness {
    /** Missing experts listed in the details; a dead instance can take hundreds with it. */
    static final int LISTED = 8;
    private final MeshExpertDispatch dispatch;
    private final String absentReason;
    private final Supplier<Optional<String>> unapplied;

    /** @param dispatch the mesh data path; null when experts run in this process (always ready) */
    public ExpertReadiness(MeshExpertDispatch dispatch) {
        this(dispatch, "no placement yet: the gateway does not know where experts live", Optional::empty);
    }

    /**
     * @param source where placements come from: its {@link PlacementSource#absentReason()} is the verdict while there
     *               is no placement (names the router the gateway waits for), its {@link PlacementSource#unapplied()}
     *               a published epoch that could not be taken
     */
    public ExpertReadiness(MeshExpertDispatch dispatch, PlacementSource source) {
        this(dispatch, source.absentReason(), source::unapplied);
    }

    private ExpertReadiness(MeshExpertDispatch dispatch, String absentReason, Supplier<Optional<String>> unapplied) {
        this.dispatch = dispatch;
        this.absentReason = absentReason;
        this.unapplied = unapplied;
    }

    public Check check() {
        if (dispatch == null) {
            return Check.up("experts run in this process", Map.of());
        }
        // The source's is the newer: the dispatch only ever sees epochs the source took.
        Optional<String> notApplied = unapplied.get().or(dispatch::refusedPlacement);
        if (!dispatch.hasPlacement()) {
            // A placement that came and could not be taken or connected says more than "none yet".
            return Check.down(notApplied.orElse(absentReason), Map.of());
        }
        Map<String, Object> instances = new LinkedHashMap<>();
        for (ResilientInstance i : dispatch.instances()) {
            instances.put(i.id(), Map.of("breaker", i.state().name(), "health", i.health().name(),
                    "available", i.available()));
        }
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("epoch", dispatch.epoch());
        notApplied.ifPresent(r -> details.put("unappliedPlacement", r));
        details.put("instances", instances);
        if (notApplied.isPresent()) {
            return Check.down(notApplied.get() + "; epoch " + dispatch.epoch() + " is answered only until the "
                    + "expert-services drain it", details);
        }
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
