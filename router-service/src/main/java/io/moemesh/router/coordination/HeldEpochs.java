package io.moemesh.router.coordination;

import java.util.List;

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
}
