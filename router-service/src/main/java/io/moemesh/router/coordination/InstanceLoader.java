package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import java.time.Duration;
import java.util.List;

/** Tells one expert-service instance to hold an epoch's experts (expert.v1 LoadAssignment). */
@FunctionalInterface
public interface InstanceLoader {
    /**
     * Returns once the instance serves {@code epoch} with {@code experts} loaded.
     *
     * @throws RuntimeException when it does not within {@code timeout} (the message says why)
     */
    void load(Instance instance, long epoch, List<AssignedExpert> experts, Duration timeout);
}
