package io.moemesh.router.coordination;

/**
 * An instance answered a LoadAssignment call and refused it because of its state (FAILED_PRECONDITION), as opposed
 * to not answering (unreachable, deadline exceeded) or failing otherwise. {@link #epochNumber()} marks a refusal of
 * the epoch's number (the expert-service said so in its reply's details, expert.proto's EPOCH_NUMBER_REFUSED), which
 * every instance would answer alike; {@link Quarantine#refusesTheEpoch} reads it.
 */
public final class InstanceRefusedException extends IllegalStateException {
    private final boolean epochNumber;

    /** A refusal not marked as one of the epoch's number. */
    public InstanceRefusedException(String message, Throwable cause) {
        this(message, cause, false);
    }

    /** @param epochNumber whether the instance marked it a refusal of the epoch's number */
    public InstanceRefusedException(String message, Throwable cause, boolean epochNumber) {
        super(message, cause);
        this.epochNumber = epochNumber;
    }

    /** The instance marked the refusal as one of the epoch's number (not of anything about itself). */
    public boolean epochNumber() {
        return epochNumber;
    }
}
