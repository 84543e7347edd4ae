package io.moemesh.kvcache.grpc;

import io.grpc.Status;
import io.moemesh.kvcache.tier.BlockNotFoundException;
import io.moemesh.kvcache.tier.PinLedger;
import io.moemesh.service.grpc.StatusMapping;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kvcache-service's one exception → Status mapping: a block an Attend needs that is not stored is NOT_FOUND; a
 * Pin whose pin id an Unpin released is ABORTED, one past the pin ids' bound RESOURCE_EXHAUSTED ({@link PinLedger});
 * everything else as every service maps it ({@link StatusMapping}: caller mistakes INVALID_ARGUMENT naming the
 * field, a Pin whose call was cancelled CANCELLED, an unknown model fingerprint or another block size
 * FAILED_PRECONDITION, anything unexpected INTERNAL without details on the wire).
 */
public final class KvCacheStatuses {
    private static final Logger log = LoggerFactory.getLogger(KvCacheStatuses.class);

    private KvCacheStatuses() {
    }

    public static Status toStatus(Throwable t) {
        if (t instanceof BlockNotFoundException) {
            return Status.NOT_FOUND.withDescription(StatusMapping.bounded(t.getMessage()));
        }
        if (t instanceof PinLedger.AbortedException) {
            return Status.ABORTED.withDescription(StatusMapping.bounded(t.getMessage()));
        }
        if (t instanceof PinLedger.LimitException) {
            return Status.RESOURCE_EXHAUSTED.withDescription(StatusMapping.bounded(t.getMessage()));
        }
        return StatusMapping.toStatus(t);
    }

    /** The status for {@code t}, logged: INTERNAL with its stack trace, a refusal in one line at debug. */
    static Status logged(String method, Throwable t) {
        Status s = toStatus(t);
        if (s.getCode() == Status.Code.INTERNAL) {
            log.error("{} failed", method, t);
        } else {
            log.debug("{} refused: {} {}", method, s.getCode(), s.getDescription());
        }
        return s;
    }
}
