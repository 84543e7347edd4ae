package io.moemesh.service.expert;

import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;

/** The data path to one expert-service instance (a long-lived gRPC stream in production, fakes in tests). */
public interface InstanceClient extends AutoCloseable {

    String id();

    /**
     * Completes with [rows, hidden] float32 = Σ w · FFN per token, or exceptionally. The array is the caller's
     * alone (never one the client or anyone else still reads or hands out again), so the caller may give it to
     * {@link io.moemesh.service.grpc.TensorArrayPool} once it has used it.
     */
    CompletableFuture<float[]> call(ExpertCall call);

    /**
     * Sends prefetch hints (expert.proto {@code Prefetch}): completes with what the instance did with them, or
     * exceptionally with the call's status. Clients that cannot send hints (in-process test instances) fail the
     * future with {@link UnsupportedOperationException}; nothing in the data path depends on hints.
     */
    default CompletableFuture<PrefetchAnswer> prefetch(PrefetchHints hints) {
        return CompletableFuture.failedFuture(new UnsupportedOperationException(id() + " takes no prefetch hints"));
    }

    /** Calls in flight now (the load signal for replica choice). */
    int inFlight();

    /** Shared-memory arena slots held by calls whose reply has not arrived (0 without an arena). */
    default int arenaSlotsInUse() {
        return 0;
    }

    /** Calls whose activations went through a shared-memory arena, since the client was made. */
    default long arenaCalls() {
        return 0;
    }

    /** What the instance's health service last said; {@link InstanceHealth#UNKNOWN} for clients that do not watch it. */
    default InstanceHealth health() {
        return InstanceHealth.UNKNOWN;
    }

    /**
     * Calls {@code listener} with the new value on every change of {@link #health()}, from any thread; it must
     * return quickly. Clients that do not watch health never call it.
     */
    default void onHealthChange(Consumer<InstanceHealth> listener) {
    }

    @Override
    void close();
}
