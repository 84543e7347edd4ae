package io.moemesh.gateway.dispatch;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.ExpertFfn;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.kernel.VectorOps;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.InstanceClient;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An expert instance computed in the test's JVM (the network boundary is what is faked here; the real gRPC
 * path is covered by the e2e suite). It can be made to fail, and counts the calls it served.
 */
final class InProcessInstance implements InstanceClient {
    private final String id;
    private final MoeModel model;
    private final ExpertFfn ffn = new ExpertFfn();
    final AtomicBoolean down = new AtomicBoolean();
    final AtomicInteger calls = new AtomicInteger();
    final Set<Integer> layersSeen = java.util.concurrent.ConcurrentHashMap.newKeySet();

    InProcessInstance(String id, MoeModel model) {
        this.id = id;
        this.model = model;
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public synchronized CompletableFuture<float[]> call(ExpertCall c) {
        if (down.get()) {
            return CompletableFuture.failedFuture(new IllegalStateException(id + " is down"));
        }
        calls.incrementAndGet();
        layersSeen.add(c.layer());
        int h = c.hidden();
        float[] out = new float[c.rows() * h];
        float[] x = new float[h];
        float[] y = new float[h];
        int q = 0;
        for (int r = 0; r < c.rows(); r++) {
            System.arraycopy(c.activations(), r * h, x, 0, h);
            for (int j = 0; j < c.counts()[r]; j++, q++) {
                ExpertWeights w = ExpertWeights.load(model.tensors(), model.config(), new ExpertKey(c.layer(), c.experts()[q]));
                ffn.apply(w, x, 1, y);
                VectorOps.axpy(c.weights()[q], y, 0, out, r * h, h);
            }
        }
        return CompletableFuture.completedFuture(out);
    }

    @Override
    public int inFlight() {
        return 0;
    }

    @Override
    public void close() {
    }
}
