package io.moemesh.expert.grpc;

import io.moemesh.expert.backend.BatchInput;
import io.moemesh.expert.backend.ExpertBackend;
import io.moemesh.expert.backend.ExpertLookup;
import io.moemesh.expert.backend.LoadedExpert;
import io.moemesh.expert.backend.NoOpExpertBackend;
import io.moemesh.model.engine.ExpertKey;
import java.util.concurrent.CountDownLatch;

/**
 * The noop backend whose computes wait for {@code release} (each signals {@code computing} first): a batch held in
 * compute, for the stream and shutdown tests.
 */
record HeldBackend(CountDownLatch computing, CountDownLatch release) implements ExpertBackend {
    private static final NoOpExpertBackend NOOP = new NoOpExpertBackend(64);

    @Override
    public String name() {
        return "held";
    }

    @Override
    public LoadedExpert load(ExpertKey key) {
        return NOOP.load(key);
    }

    @Override
    public void compute(BatchInput batch, ExpertLookup experts, float[] out) {
        computing.countDown();
        try {
            release.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
        NOOP.compute(batch, experts, out);
    }
}
