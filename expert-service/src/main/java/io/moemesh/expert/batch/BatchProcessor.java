package io.moemesh.expert.batch;

import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.backend.BackendFaults;
import io.moemesh.expert.backend.BatchInput;
import io.moemesh.expert.backend.ExpertBackend;
import io.moemesh.expert.backend.ExpertLookup;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.expert.backend.LoadedExpert;
import io.moemesh.expert.residency.ResidentSet;
import io.moemesh.model.engine.ExpertKey;
import java.util.Arrays;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BiConsumer;
import java.util.function.LongSupplier;

/**
 * Validates ExpertBatch messages against the model and the assignment, then computes them on a bounded pool of
 * worker threads. Each message succeeds or fails alone; when every worker is busy and the queue is full, the
 * message is refused (RejectedExecutionException → RESOURCE_EXHAUSTED) rather than buffered without bound.
 *
 * <p>Inline rule: a batch of at most {@code inlineMaxTokens} tokens, and at most what the backend allows
 * ({@link ExpertBackend#inlineMaxTokens()}: any size for {@code noop}, 1-4 tokens for {@code cpu}), with at most as
 * many (token, expert) pairs as that many tokens have when routed (the model's top-k plus its shared expert per
 * token), is computed on the calling thread (the transport thread that read the message) instead of waking a
 * worker, when every expert it uses is resident (no load on the event loop). That is safe on an event loop: the
 * work is bounded (one pass over a few tokens' rows and their few experts' weights) and never waits on I/O or a
 * lock; larger batches still go to the workers. The pair bound matters because a token's pairs are the caller's to
 * choose: without it one token listing every expert of the layer ran a pass over all their weights on the event
 * loop.
 *
 * <p>A token lists each expert at most once (refused otherwise, see {@link #validate}): so a batch has at most
 * tokens × the model's experts pairs, and the backend's scratch for one expert's rows never exceeds the batch's own
 * token rows. Before that rule a 2.5 MB message of one token listing expert 0 half a million times made the cpu
 * backend gather half a million rows (16 GB at hidden 4096).
 */
public final class BatchProcessor implements AutoCloseable {
    private final ExpertModel model;
    private final ExpertBackend backend;
    private final ResidentSet resident;
    private final AssignmentManager assignments;
    private final LoadTracker load;
    private final LongSupplier nanoClock;
    private final ThreadPoolExecutor workers;
    private final int inlineMaxTokens;
    /** Most pairs an inline batch may have: {@link #inlineMaxTokens} tokens' worth of routed pairs. */
    private final long inlineMaxPairs;

    /** Never inline. */
    public BatchProcessor(ExpertModel model, ExpertBackend backend, ResidentSet resident, AssignmentManager assignments,
                          LoadTracker load, LongSupplier nanoClock, int threads, int maxQueued) {
        this(model, backend, resident, assignments, load, nanoClock, threads, maxQueued, 0);
    }

    /** @param inlineMaxTokens largest batch computed on the caller's thread under the inline rule; 0 = never */
    public BatchProcessor(ExpertModel model, ExpertBackend backend, ResidentSet resident, AssignmentManager assignments,
                          LoadTracker load, LongSupplier nanoClock, int threads, int maxQueued, int inlineMaxTokens) {
        if (inlineMaxTokens < 0) {
            throw new IllegalArgumentException("inlineMaxTokens must be >= 0, got " + inlineMaxTokens);
        }
        this.inlineMaxTokens = Math.min(inlineMaxTokens, backend.inlineMaxTokens());
        this.inlineMaxPairs = (long) this.inlineMaxTokens * model.config().pairsPerToken();
        this.model = model;
        this.backend = backend;
        this.resident = resident;
        this.assignments = assignments;
        this.load = load;
        this.nanoClock = nanoClock;
        BlockingQueue<Runnable> queue = maxQueued == 0 ? new SynchronousQueue<>() : new ArrayBlockingQueue<>(maxQueued);
        AtomicInteger n = new AtomicInteger();
        String who = assignments.instanceId();
        this.workers = new ThreadPoolExecutor(threads, threads, 0, TimeUnit.SECONDS, queue, r -> {
            Thread t = new Thread(r, "expert-compute-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        }, (r, pool) -> {
            throw new RejectedExecutionException(who + ": all " + threads + " compute workers busy and " + maxQueued
                    + " batches queued; retry later or send to another replica");
        });
    }

    /**
     * Validates and schedules a batch; {@code done} gets the result or the failure, exactly once, on a worker
     * thread (or on the caller's thread when the batch is refused before computing or computed inline).
     *
     * @param arrivalNanos when the message was decoded, for queue_micros
     */
    public void submit(BatchRequest request, long arrivalNanos, BiConsumer<BatchResult, Throwable> done) {
        load.batchArrived();
        BiConsumer<BatchResult, Throwable> answer = (r, t) -> {
            try {
                done.accept(r, t);
            } finally {
                load.batchAnswered();
            }
        };
        long servingEpoch;
        try {
            validate(request.input());
            checkOut(request);
            int[] distinct = distinctExperts(request.input());
            servingEpoch = assignments.checkHeld(request.epoch(), request.input().layer(), distinct);
            ExpertLookup held = inline(request.input(), distinct);
            if (held != null) {
                compute(request, arrivalNanos, servingEpoch, held, answer, true);
                return;
            }
            workers.execute(() -> compute(request, arrivalNanos, servingEpoch, resident::acquire, answer, false));
        } catch (RuntimeException e) {
            answer.accept(null, e);
        }
    }

    /**
     * The experts of a batch small enough for the transport thread, when all are resident: taken at once, so an
     * eviction meanwhile (another batch's miss, a prefetch, a new assignment) cannot make the compute load one on
     * the event loop; null when the batch goes to a worker.
     */
    private ExpertLookup inline(BatchInput in, int[] distinct) {
        if (in.tokens() > inlineMaxTokens || in.pairs() > inlineMaxPairs) {
            return null;
        }
        ExpertKey[] keys = new ExpertKey[distinct.length];
        for (int i = 0; i < distinct.length; i++) {
            keys[i] = model.key(in.layer(), distinct[i]);
        }
        LoadedExpert[] held = resident.acquireIfAllResident(keys);
        if (held == null) {
            return null;
        }
        return key -> {
            int i = key.layer() == in.layer() ? Arrays.binarySearch(distinct, key.expert()) : -1; // distinct: sorted
            if (i < 0) {
                throw new IllegalStateException("expert " + key + " is not one the batch named");
            }
            return held[i];
        };
    }

    /** @param inline on the transport thread that read the message (the inline rule), not on a worker */
    private void compute(BatchRequest request, long arrivalNanos, long servingEpoch, ExpertLookup experts,
                         BiConsumer<BatchResult, Throwable> done, boolean inline) {
        BatchInput in = request.input();
        long start = nanoClock.getAsLong();
        BatchResult result;
        try {
            float[] out = request.out() != null ? request.out() : new float[in.tokens() * model.hiddenSize()];
            backend.compute(in, experts, out);
            if (load.inFlightBatches() == 1) {
                backend.idle(); // the last batch in flight: nothing to compute until the gateway's next layer
            }
            long end = nanoClock.getAsLong();
            load.tokensProcessed(in.tokens());
            result = new BatchResult(in.layer(), in.tokens(), out, start - arrivalNanos, end - start, servingEpoch);
        } catch (RuntimeException e) {
            done.accept(null, e);
            return;
        } catch (Error e) {
            // Answered (the gateway's call and the stream's slot are not left waiting), then never swallowed: it
            // ends the thread it hit, as docs/design.md says (an OutOfMemoryError ends the service,
            // -XX:+ExitOnOutOfMemoryError, and its supervisor restarts it)
            try {
                done.accept(null, e);
            } catch (RuntimeException alsoFailed) {
                e.addSuppressed(alsoFailed);
            }
            // Except inline: there the thread is the stream's, and gRPC would close the whole stream (every batch in
            // flight on it) with UNKNOWN for one batch's fault (an InternalError reading a truncated mapped file).
            // The answer above carries it (INTERNAL, which BatchStream logs); the VM's own errors still go on.
            if (!inline || BackendFaults.fatal(e)) {
                throw e;
            }
            return;
        }
        done.accept(result, null);
    }

    /**
     * The structural rules of an ExpertBatchRequest (see expert.proto), and each expert at most once per token (a
     * router picks distinct experts; a repeat would only bloat the batch); IllegalArgumentException says which.
     */
    void validate(BatchInput in) {
        model.checkLayer(in.layer());
        if (in.tokens() < 1) {
            throw new IllegalArgumentException("activations: num_tokens must be >= 1, got " + in.tokens());
        }
        if (in.x().length != in.tokens() * model.hiddenSize()) {
            throw new IllegalArgumentException("activations: " + in.x().length + " floats for " + in.tokens()
                    + " tokens of hidden size " + model.hiddenSize());
        }
        if (in.counts().length != in.tokens()) {
            throw new IllegalArgumentException("token_expert_counts has " + in.counts().length + " entries for "
                    + in.tokens() + " tokens");
        }
        long sum = 0;
        for (int c : in.counts()) {
            sum += Integer.toUnsignedLong(c);
        }
        if (sum != in.experts().length) {
            throw new IllegalArgumentException("token_expert_counts sum to " + sum + " but experts has "
                    + in.experts().length + " entries");
        }
        if (in.weights().length != in.experts().length) {
            throw new IllegalArgumentException("weights has " + in.weights().length + " entries but experts has "
                    + in.experts().length);
        }
        // Per expert id, 1 + the last token that listed it (0 = none yet): one small array per message, no set.
        int[] listedBy = new int[model.dispatchableExperts()];
        int i = 0;
        for (int t = 0; t < in.tokens(); t++) {
            for (int end = i + in.counts()[t]; i < end; i++) { // counts sum to experts.length (checked above)
                int expert = in.experts()[i];
                try {
                    model.key(in.layer(), expert);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("experts[" + i + "]: " + e.getMessage(), e);
                }
                if (listedBy[expert] == t + 1) {
                    throw new IllegalArgumentException("experts[" + i + "]: expert " + expert + " is listed twice for"
                            + " token " + t + " (each expert at most once per token)");
                }
                listedBy[expert] = t + 1;
                if (!Float.isFinite(in.weights()[i])) {
                    throw new IllegalArgumentException("weights[" + i + "] is " + in.weights()[i]
                            + " (combine weights must be finite)");
                }
            }
        }
    }

    /** A caller's output array must have exactly the batch's [tokens, hidden] floats. */
    private void checkOut(BatchRequest request) {
        float[] out = request.out();
        long want = (long) request.input().tokens() * model.hiddenSize();
        if (out != null && out.length != want) {
            throw new IllegalArgumentException("output array of " + out.length + " floats for " + request.input().tokens()
                    + " tokens of hidden size " + model.hiddenSize());
        }
    }

    /** The distinct expert ids, ascending (a loop, not a stream: this runs once per message on the event loop). */
    static int[] distinctExperts(BatchInput in) {
        int[] e = in.experts().clone();
        Arrays.sort(e);
        int n = 0;
        for (int i = 0; i < e.length; i++) {
            if (i == 0 || e[i] != e[n - 1]) {
                e[n++] = e[i];
            }
        }
        return n == e.length ? e : Arrays.copyOf(e, n);
    }

    @Override
    public void close() {
        workers.shutdown();
        try {
            if (!workers.awaitTermination(10, TimeUnit.SECONDS)) {
                workers.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            workers.shutdownNow();
        }
    }
}
