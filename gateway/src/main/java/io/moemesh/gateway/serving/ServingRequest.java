package io.moemesh.gateway.serving;

import io.moemesh.model.generate.GenerationRequest;
import java.util.List;

/** A request as every public API hands it to the {@link GenerationService}. */
public record ServingRequest(String requestId, String tenant, GenerationRequest generation, List<String> stop) {

    public ServingRequest {
        stop = List.copyOf(stop);
        if (stop.size() > 4) {
            throw new IllegalArgumentException("stop takes at most 4 sequences, got " + stop.size());
        }
    }
}
