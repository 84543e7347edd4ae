package io.moemesh.gateway.config;

import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * Lookahead prefetch ({@code moemesh.gateway.dispatch.lookahead-prefetch.*}, a part of {@link DispatchProperties}),
 * after Pre-gated MoE: during layer l the engine applies layer l+1's gate to layer l's MoE input, and the gateway
 * sends expert.v1 {@code Prefetch} hints for the predicted experts to the instances the placement and the replica
 * picker would use, so an expert-service whose resident set cannot hold its whole assignment loads them before
 * layer l+1's batch arrives. Advice only: tokens never depend on it.
 *
 * @param enabled     off by default: an expert-service whose resident set holds its whole assignment (the
 *                    default budget, 8 GiB, holds every synthetic and tiny model) gains nothing, and each
 *                    layer then costs one more small message per instance; turn it on for instances whose
 *                    {@code moemesh.expert.memory-budget-bytes} is below their assignment
 * @param topK        routed experts predicted per token and layer; 0 (default) = the model's top-k. Capped to
 *                    the model's number of experts
 * @param maxInFlight Prefetch calls in flight over all instances; a hint beyond it is dropped (counted), so
 *                    a slow instance never makes hints pile up
 */
public record LookaheadPrefetchProperties(
        @DefaultValue("false") boolean enabled,
        @DefaultValue("0") int topK,
        @DefaultValue("64") int maxInFlight) {

    public LookaheadPrefetchProperties {
        if (topK < 0) {
            throw new IllegalArgumentException("moemesh.gateway.dispatch.lookahead-prefetch.top-k must be >= 0 "
                    + "(0 = the model's top-k), got " + topK);
        }
        if (maxInFlight < 1) {
            throw new IllegalArgumentException("moemesh.gateway.dispatch.lookahead-prefetch.max-in-flight must "
                    + "be >= 1, got " + maxInFlight);
        }
    }
}
