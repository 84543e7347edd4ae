package io.moemesh.gateway.dispatch;

import io.moemesh.model.engine.LookaheadObserver;
import io.moemesh.model.engine.RouteObserver;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import io.moemesh.service.expert.PrefetchHints;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;

/**
 * Prefetch hints from the engine's lookahead (Pre-gated MoE, Hwang et al., ISCA 2024): during layer l the engine
 * hands over the experts layer l+1's gate picks on layer l's MoE input; this sends each instance that the current
 * placement and the replica picker would use for them one expert.v1 {@code Prefetch} with its distinct experts
 * (one message per instance and layer, so a step's hints are deduplicated), before layer l's own experts are
 * dispatched (with ping-pong micro-batches, before the last micro-batch's: the engine observes the whole step once
 * per layer, so every micro-batch's layer l+1 call comes after the hint). The shared expert of Qwen2-MoE is never predicted but always needed: it is hinted with them.
 *
 * <p>Hints are advice, and nothing here may slow down or fail a step: they are sent asynchronously and never
 * awaited, past the breaker and the bulkhead ({@link ResilientInstance#prefetch}), only to instances that are
 * {@link ResilientInstance#available() available}, at most {@code maxInFlight} calls at once (more are dropped);
 * a failed call or any exception here is only counted. As a {@link RouteObserver} it also scores its guesses
 * against the true gate at layer l+1: the online lookahead recall, {@link #hits()} ÷ {@link #trueExperts()}. A
 * layer is hinted, and scored, once per step: a step run again without the sequences whose remote attention failed
 * (model's {@code FailedRemotes}) goes on from the layers its failed pass reached ({@link #observed}).
 * {@link #onLookahead} and {@link #onRoutes} run on the engine thread; the counters are read from any thread.
 */
public final class LookaheadPrefetch implements LookaheadObserver, RouteObserver {
    private final MeshExpertDispatch dispatch;
    private final int guesses;
    private final int topK;
    /** The shared expert's id (num_experts), or -1 for a model without one. */
    private final int sharedExpert;
    private final int maxInFlight;
    private final AtomicInteger inFlight = new AtomicInteger();
    private final LongAdder hintsSent = new LongAdder();
    private final LongAdder requestsSent = new LongAdder();
    private final LongAdder requestsFailed = new LongAdder();
    private final LongAdder requestsDropped = new LongAdder();
    private final LongAdder trueExperts = new LongAdder();
    private final LongAdder hits = new LongAdder();
    /** The last lookahead (engine thread only): its layer, rows and guesses, scored when that layer's gate runs. */
    private int pendingLayer = -1;
    private int pendingRows;
    private int pendingPerRow;
    private int[] pending = new int[0];
    /**
     * The step observed last (engine thread only), and the last layer hinted and scored in it over its passes. A step
     * whose remote attention failed for some of its sequences runs again without them as a new StepContext of the
     * same SequenceStep objects, less theirs (FailedRemotes); its failed pass had hinted and scored the layers it
     * reached, for those rows too: hinted again, and counted again, they would count the step twice. So a re-run
     * sends only the layers' hints its failed pass did not, and scores only the layers it did not.
     */
    private StepContext observed;
    private int hintedThrough;
    private int scoredThrough;

    /**
     * @param guesses      routed experts predicted per row (k'), at least 1
     * @param topK         the model's top-k (how many true experts a row has per layer)
     * @param sharedExpert the shared expert's id ({@code num_experts}) for Qwen2-MoE, else -1
     * @param maxInFlight  Prefetch calls in flight at once over all instances, at least 1
     */
    public LookaheadPrefetch(MeshExpertDispatch dispatch, int guesses, int topK, int sharedExpert, int maxInFlight) {
        if (guesses < 1) {
            throw new IllegalArgumentException("lookahead guesses must be >= 1, got " + guesses);
        }
        if (maxInFlight < 1) {
            throw new IllegalArgumentException("prefetch max in flight must be >= 1, got " + maxInFlight);
        }
        this.dispatch = dispatch;
        this.guesses = guesses;
        this.topK = topK;
        this.sharedExpert = sharedExpert;
        this.maxInFlight = maxInFlight;
    }

    @Override
    public int guesses() {
        return guesses;
    }

    @Override
    public void onLookahead(StepContext step, int nextLayer, int[] experts, float[] scores, int perRow) {
        enter(step);
        int rows = step.rows();
        if (pending.length < rows * perRow) {
            pending = new int[rows * perRow];
        }
        System.arraycopy(experts, 0, pending, 0, rows * perRow);
        pendingLayer = nextLayer;
        pendingRows = rows;
        pendingPerRow = perRow;
        if (nextLayer <= hintedThrough) {
            return; // hinted by this step's failed pass (see the field)
        }
        hintedThrough = nextLayer;
        try {
            send(nextLayer, rows, experts, perRow);
        } catch (RuntimeException e) {
            // Advice only: whatever went wrong here must not fail the step (counted, like a failed call).
            requestsFailed.increment();
        }
    }

    private void send(int layer, int rows, int[] experts, int perRow) {
        int width = perRow + (sharedExpert >= 0 ? 1 : 0);
        int[] pairs = new int[rows * width];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(experts, r * perRow, pairs, r * width, perRow);
            if (sharedExpert >= 0) {
                pairs[r * width + perRow] = sharedExpert;
            }
        }
        for (MeshExpertDispatch.PrefetchTarget t : dispatch.prefetchTargets(layer, rows, pairs, width)) {
            if (!t.instance().available()) {
                continue;
            }
            if (inFlight.incrementAndGet() > maxInFlight) {
                inFlight.decrementAndGet();
                requestsDropped.increment();
                continue;
            }
            List<PrefetchHints.Expert> hints = new ArrayList<>(t.experts().length);
            for (int e : t.experts()) {
                hints.add(new PrefetchHints.Expert(layer, e));
            }
            requestsSent.increment();
            hintsSent.add(hints.size());
            try {
                t.instance().prefetch(new PrefetchHints(t.epoch(), hints)).whenComplete((answer, error) -> {
                    inFlight.decrementAndGet();
                    if (error != null) {
                        requestsFailed.increment();
                    }
                });
            } catch (RuntimeException e) {
                inFlight.decrementAndGet();
                requestsFailed.increment();
            }
        }
    }

    /** Scores the last lookahead against the true gate of the layer it predicted. */
    @Override
    public void onRoutes(StepContext step, int layer, int[] experts, float[] weights, int pairsPerToken) {
        enter(step);
        if (layer != pendingLayer || step.rows() != pendingRows) {
            return;
        }
        pendingLayer = -1;
        if (layer <= scoredThrough) {
            return; // scored in this step's failed pass (see the field)
        }
        scoredThrough = layer;
        long found = 0;
        for (int r = 0; r < pendingRows; r++) {
            for (int j = 0; j < topK; j++) {
                int want = experts[r * pairsPerToken + j];
                for (int q = 0; q < pendingPerRow; q++) {
                    if (pending[r * pendingPerRow + q] == want) {
                        found++;
                        break;
                    }
                }
            }
        }
        trueExperts.add((long) pendingRows * topK);
        hits.add(found);
    }

    /** Notes the step observed: a new one starts with no layer hinted or scored, a re-run of the last goes on. */
    private void enter(StepContext s) {
        if (s == observed) {
            return;
        }
        if (!rerunOf(s, observed)) {
            hintedThrough = 0;
            scoredThrough = 0;
        }
        observed = s;
    }

    /**
     * Whether {@code s} is {@code last} run again without some of its sequences: fewer, and each one of
     * {@code last}'s SequenceStep objects, in any order (a re-run may group its rows into micro-batches anew, e.g.
     * under {@code micro-batch-grouping=predicted-path}). A later step is never that: the scheduler makes each
     * step's SequenceSteps anew.
     */
    private static boolean rerunOf(StepContext s, StepContext last) {
        if (last == null || s.sequences().size() >= last.sequences().size()) {
            return false;
        }
        Set<SequenceStep> before = Collections.newSetFromMap(new IdentityHashMap<>());
        before.addAll(last.sequences());
        for (SequenceStep q : s.sequences()) {
            if (!before.contains(q)) {
                return false;
            }
        }
        return true;
    }

    /** Experts hinted (over all Prefetch calls sent). */
    public long hintsSent() {
        return hintsSent.sum();
    }

    /** Prefetch calls sent. */
    public long requestsSent() {
        return requestsSent.sum();
    }

    /** Prefetch calls that failed (or could not be sent). */
    public long requestsFailed() {
        return requestsFailed.sum();
    }

    /** Prefetch calls not sent because {@code maxInFlight} were in flight. */
    public long requestsDropped() {
        return requestsDropped.sum();
    }

    /** True routed experts (rows × top-k) at the layers a lookahead predicted. */
    public long trueExperts() {
        return trueExperts.sum();
    }

    /** Of {@link #trueExperts()}, those among the lookahead's guesses. */
    public long hits() {
        return hits.sum();
    }
}
