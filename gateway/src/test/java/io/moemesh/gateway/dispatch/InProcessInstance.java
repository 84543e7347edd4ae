package io.moemesh.gateway.dispatch;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.ExpertFfn;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.ExpertWeights;
import io.grpc.Status;
import io.moemesh.model.kernel.VectorOps;
import io.moemesh.service.expert.EpochRefusedException;
import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.expert.InstanceClient;
import io.moemesh.service.expert.InstanceHealth;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;

/**
 * An expert instance computed in the test's JVM (the network boundary is what is faked here; the real gRPC
 * path is covered by the e2e suite). It can be made to fail, to never answer, to answer a call late, to answer only
 * once a latch opens or
 * to refuse older placement epochs as the expert-service does (STALE_EPOCH), reports a settable gRPC health to its listeners like the real client's health watch, and counts the calls it got
 * and served.
 */
final class InProcessInstance implements InstanceClient {
    private final String id;
    private final MoeModel model;
    private final ExpertFfn ffn = new ExpertFfn();
    final AtomicBoolean down = new AtomicBoolean();
    /** Calls are accepted and never answered (a wedged instance). */
    final AtomicBoolean hang = new AtomicBoolean();
    /** Every call that reached the instance, failed or not. */
    final AtomicInteger attempts = new AtomicInteger();
    final AtomicInteger calls = new AtomicInteger();
    final List<CompletableFuture<float[]>> unanswered = new CopyOnWriteArrayList<>();
    /** When set, the next reply is computed at once but delivered this long after its call arrived (then cleared). */
    final AtomicReference<Duration> nextAnswerAfter = new AtomicReference<>();
    /** While it holds a latch, replies are computed at once but delivered (on another thread) once it opens. */
    final AtomicReference<CountDownLatch> hold = new AtomicReference<>();
    /**
     * Held replies delivered, each counted once its future completed: whatever ran on that completion (the
     * dispatcher's callbacks) has run.
     */
    final AtomicInteger delivered = new AtomicInteger();
    /** Calls under an older placement epoch are refused with STALE_EPOCH; 0: every epoch is served. */
    final AtomicLong servingEpoch = new AtomicLong();
    /** Set by {@link #close()}: the dispatcher let go of this client. */
    final AtomicBoolean closed = new AtomicBoolean();
    private final List<Consumer<InstanceHealth>> healthListeners = new CopyOnWriteArrayList<>();
    private volatile InstanceHealth health = InstanceHealth.UNKNOWN;
    final Set<Integer> layersSeen = ConcurrentHashMap.newKeySet();

    InProcessInstance(String id, MoeModel model) {
        this.id = id;
        this.model = model;
    }

    @Override
    public String id() {
        return id;
    }

    /** What its health watch would see next; listeners are told at once, on this thread. */
    void health(InstanceHealth h) {
        health = h;
        healthListeners.forEach(l -> l.accept(h));
    }

    @Override
    public InstanceHealth health() {
        return health;
    }

    @Override
    public void onHealthChange(Consumer<InstanceHealth> listener) {
        healthListeners.add(listener);
    }

    @Override
    public synchronized CompletableFuture<float[]> call(ExpertCall c) {
        attempts.incrementAndGet();
        if (hang.get()) {
            CompletableFuture<float[]> never = new CompletableFuture<>();
            unanswered.add(never);
            return never;
        }
        if (down.get()) {
            return CompletableFuture.failedFuture(new IllegalStateException(id + " is down"));
        }
        long serving = servingEpoch.get();
        if (c.epoch() < serving) {
            String what = id + ": stale epoch " + c.epoch() + ", serving " + serving;
            return CompletableFuture.failedFuture(new EpochRefusedException(what, true,
                    Status.FAILED_PRECONDITION.withDescription(what).asRuntimeException()));
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
        Duration after = nextAnswerAfter.getAndSet(null);
        if (after != null) {
            CompletableFuture<float[]> late = new CompletableFuture<>();
            CompletableFuture.delayedExecutor(after.toNanos(), TimeUnit.NANOSECONDS).execute(() -> late.complete(out));
            return late;
        }
        CountDownLatch latch = hold.get();
        if (latch == null) {
            return CompletableFuture.completedFuture(out);
        }
        CompletableFuture<float[]> reply = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try {
                latch.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            reply.complete(out);
            delivered.incrementAndGet();
        });
        return reply;
    }

    @Override
    public int inFlight() {
        return 0;
    }

    @Override
    public void close() {
        closed.set(true);
    }
}
