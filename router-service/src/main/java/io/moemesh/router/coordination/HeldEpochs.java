package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import java.util.List;
import java.util.Map;

/**
 * What an expert-service instance holds (expert.v1 DescribeInstance): its served epoch with that epoch's experts,
 * and the epoch it holds prepared.
 *
 * @param served         the served epoch, 0 for none
 * @param servedExperts  the experts assigned for {@code served}, ascending by (layer, expert)
 * @param prepared       the prepared epoch, 0 for none
 */
public record HeldEpochs(long served, List<AssignedExpert> servedExperts, long prepared) {
    public static final HeldEpochs NONE = new HeldEpochs(0, List.of(), 0);

    public HeldEpochs {
        servedExperts = List.copyOf(servedExperts);
    }

    /** The higher of the two epochs. */
    public long highest() {
        return Long.compareUnsigned(served, prepared) >= 0 ? served : prepared;
    }

    /**
     * Whether every instance would accept {@code deal} as it is: each holds only lower epochs, or serves exactly
     * the deal's epoch with exactly the experts the deal gives it (a PREPARE of the served epoch with the same
     * experts is a no-op), nothing prepared above it.
     */
    static boolean allowAsIs(Placement deal, Map<Instance, HeldEpochs> held) {
        long epoch = deal.getEpoch();
        return held.entrySet().stream().allMatch(e -> e.getValue().highest() < epoch
                || (e.getValue().served() == epoch && e.getValue().prepared() <= epoch
                && e.getValue().servedExperts().equals(PlacementMessages.assignment(deal, e.getKey().getId()))));
    }
}
