package io.moemesh.service.expert;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;

/**
 * An instance refused an expert call for its placement epoch: FAILED_PRECONDITION with a {@code google.rpc.ErrorInfo}
 * of reason {@value #STALE_EPOCH} (older than the oldest epoch the instance still serves) or {@value #EPOCH_NOT_LOADED}
 * (newer than its latest LoadAssignment), as expert.proto's {@code ExpertBatchResponse.status} says. The caller
 * routed under an epoch the mesh does not serve: its placement is off, not the instance, so a gateway does not count
 * it against the instance's circuit breaker. Its cause is the reply's status as a {@code StatusRuntimeException}
 * ({@code Status.fromThrowable} finds the code there).
 */
public final class EpochRefusedException extends RuntimeException {
    public static final String STALE_EPOCH = "STALE_EPOCH";
    public static final String EPOCH_NOT_LOADED = "EPOCH_NOT_LOADED";
    private final boolean stale;

    /**
     * @param stale  whether the epoch is older than the instance serves ({@value #STALE_EPOCH}), else newer
     * @param status the reply's status as an exception
     */
    public EpochRefusedException(String message, boolean stale, Throwable status) {
        super(message, status);
        this.stale = stale;
    }

    /** The epoch is older than the oldest the instance serves; false: newer than its latest. */
    public boolean stale() {
        return stale;
    }

    /**
     * What a failed reply's status is as an exception: an {@link EpochRefusedException} (caused by {@code failure})
     * when the status says the epoch was refused, else {@code failure} itself.
     *
     * @param failure the status as a {@code StatusRuntimeException}, its description naming the instance
     */
    static RuntimeException of(com.google.rpc.Status status, RuntimeException failure) {
        if (status.getCode() != Status.Code.FAILED_PRECONDITION.value()) {
            return failure;
        }
        for (Any detail : status.getDetailsList()) {
            if (!detail.is(ErrorInfo.class)) {
                continue;
            }
            try {
                String reason = detail.unpack(ErrorInfo.class).getReason();
                if (STALE_EPOCH.equals(reason) || EPOCH_NOT_LOADED.equals(reason)) {
                    return new EpochRefusedException(failure.getMessage(), STALE_EPOCH.equals(reason), failure);
                }
            } catch (InvalidProtocolBufferException e) {
                // A detail that does not parse says nothing about the epoch: the plain status stands.
            }
        }
        return failure;
    }
}
