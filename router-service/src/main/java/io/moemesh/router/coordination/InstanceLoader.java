package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Instance;
import java.time.Duration;
import java.util.List;

/**
 * Moves one expert-service instance through the two-phase epoch switch (expert.v1 LoadAssignment with its stage):
 * prepare an epoch next to the served one, then commit it once it is published, or abort it when the switch fails.
 * Every method returns once the instance answered, and throws when it refused or did not answer within
 * {@code timeout} (the message says why).
 */
public interface InstanceLoader {
    /**
     * PREPARE: returns once the instance holds {@code epoch} with {@code experts} loaded, answers requests at it, and
     * still answers its served epoch (or already serves {@code epoch} with these experts).
     *
     * @throws InstanceRefusedException when the instance answered that what it holds rules the PREPARE out
     *                                  (FAILED_PRECONDITION): {@code epoch} already held with other experts, an older
     *                                  epoch than its served or prepared one, one too far above its served one
     *                                  (these three {@link InstanceRefusedException#epochNumber() marked} when the
     *                                  instance said they refuse the epoch's number)
     */
    void prepare(Instance instance, long epoch, List<AssignedExpert> experts, Duration timeout);

    /**
     * COMMIT: returns once the instance serves {@code epoch} (the older epoch drains for the instance's grace).
     *
     * @throws InstanceRefusedException when the instance answered that it holds {@code epoch} neither prepared nor
     *                                  served (FAILED_PRECONDITION), e.g. after a restart: it has nothing of it to
     *                                  switch to, and nothing to lose from a newer PREPARE
     */
    void commit(Instance instance, long epoch, Duration timeout);

    /** ABORT: returns once the instance no longer holds {@code epoch} prepared (a no-op for an epoch it does not). */
    void abort(Instance instance, long epoch, Duration timeout);

    /**
     * The epochs the instance holds (expert.v1 DescribeInstance). An instance refuses a PREPARE older than its served
     * epoch, so a router without its epoch file (a Kubernetes pod whose state folder is an emptyDir, recreated)
     * starts above what its instances hold instead of at epoch 1.
     */
    HeldEpochs held(Instance instance, Duration timeout);

    /**
     * An epoch for exactly {@code instances} was published: what is held for any other instance (a connection) may be
     * released. A later call to another instance must still work.
     */
    default void placingOn(List<Instance> instances) {
    }
}
