package io.moemesh.service.expert;

import java.util.concurrent.CompletableFuture;

/** The data path to one expert-service instance (a long-lived gRPC stream in production, fakes in tests). */
public interface InstanceClient extends AutoCloseable {

    String id();

    /** Completes with [rows, hidden] float32 = Σ w · FFN per token, or exceptionally. */
    CompletableFuture<float[]> call(ExpertCall call);

    /** Calls in flight now (the load signal for replica choice). */
    int inFlight();

    @Override
    void close();
}
