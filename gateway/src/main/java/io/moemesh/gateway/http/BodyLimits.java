package io.moemesh.gateway.http;

import io.moemesh.gateway.serving.IntakeLimiter;
import java.time.Duration;
import java.util.function.Consumer;

/**
 * What every /v1 request body is received within, shared by all of them.
 *
 * @param maxBytes    a body past this is 413 (moemesh.gateway.admission.max-request-bytes)
 * @param intake      a large body needs one of its permits (429 when none is free)
 * @param held        the bytes bodies being received may hold together (429 past it)
 * @param readTimeout how long a body may take to arrive whole from the end of its headers
 *                    (moemesh.gateway.admission.request-read-timeout): 408 and the connection closed at the deadline
 * @param chargeRate  charges a tenant's rate (throws OverloadedException past it): a generation request's tenant is
 *                    charged before its body's first byte is taken in, so a tenant past its rate is refused without
 *                    holding received bytes or a large-request permit
 */
record BodyLimits(long maxBytes, IntakeLimiter intake, HeldBodyBytes held, Duration readTimeout,
                  Consumer<String> chargeRate) {

    /** The bytes a refused request's body is still read and dropped for, so its client reads the answer. */
    long discardBytes() {
        // Twice the limit: a body declared somewhat over it (413) is still read to its end, so that its client,
        // still sending, reads the answer; a longer one has its connection closed under it.
        return 2 * maxBytes;
    }
}
