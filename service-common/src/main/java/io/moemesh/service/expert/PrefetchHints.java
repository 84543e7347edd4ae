package io.moemesh.service.expert;

import java.util.List;

/**
 * Prefetch hints for one expert-service instance (expert.proto {@code PrefetchRequest}): experts it should make
 * resident ahead of use, most urgent first. Advice only: the instance counts what it cannot use as ignored.
 *
 * @param epoch   the placement epoch the hints were computed under (proto uint64); hints for experts the
 *                instance is not assigned in its serving epoch are ignored; 0 = no epoch check
 * @param experts the experts to make resident, most urgent first
 */
public record PrefetchHints(long epoch, List<Expert> experts) {

    public PrefetchHints {
        if (experts == null) {
            throw new IllegalArgumentException("experts must be set (an empty list sends no hint)");
        }
        experts = List.copyOf(experts);
    }

    /**
     * One expert of one layer (expert.proto {@code ExpertRef}).
     *
     * @param layer  decoder layer, 0-based
     * @param expert routed [0, num_experts), the shared expert of Qwen2-MoE {@code num_experts}
     */
    public record Expert(int layer, int expert) {
        public Expert {
            // uint32 on the wire: a negative value would arrive as a huge index, not as the caller's mistake.
            if (layer < 0) {
                throw new IllegalArgumentException("layer must be ≥ 0, got " + layer);
            }
            if (expert < 0) {
                throw new IllegalArgumentException("expert must be ≥ 0, got " + expert);
            }
        }
    }
}
