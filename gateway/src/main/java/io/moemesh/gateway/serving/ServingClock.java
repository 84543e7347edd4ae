package io.moemesh.gateway.serving;

import java.util.function.LongSupplier;

/**
 * The one clock a request's times are read from, in nanoseconds: its arrival at the API (the HTTP filter, the gRPC
 * interceptor) and its token times ({@link ServingMetrics}), so TTFT and E2E are differences of one clock. {@link
 * #SYSTEM} in service; a test substitutes it to place an arrival without waiting.
 */
@FunctionalInterface
public interface ServingClock extends LongSupplier {
    ServingClock SYSTEM = System::nanoTime;
}
