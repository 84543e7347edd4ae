package io.moemesh.gateway.serving;

import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.dispatch.PromptDispatch;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.model.generate.FinishReason;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.PromptOutgrewCacheException;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.tokenizer.Tokenizer;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one path from a public API to the engine: admission, then a sequence on the engine loop whose tokens
 * become text deltas (UTF-8 and stop strings held back; a stop token ends the text as a stop string does), finish
 * reasons, usage and metrics. A traced request's
 * dispatch record ({@link DispatchTraces}, by its sequence id) goes to its sink with the completion, and is
 * discarded whatever else ends the sequence (error, cancellation), so none outlives its request.
 */
public final class GenerationService {
    private static final Logger log = LoggerFactory.getLogger(GenerationService.class);

    private final EngineLoop engine;
    private final Tokenizer tokenizer;
    private final AdmissionControl admission;
    private final ServingMetrics metrics;
    private final DispatchTraces traces;
    private final Runnable ready;
    private final SequenceCaps caps;
    /** Sequences that may be capped, by id: a lowered cap finds its run here (see {@link Run#checkCap}). */
    private final Map<Long, Run> runs = new ConcurrentHashMap<>();

    public GenerationService(EngineLoop engine, Tokenizer tokenizer, AdmissionControl admission, ServingMetrics metrics,
                             DispatchTraces traces) {
        this(engine, tokenizer, admission, metrics, traces, () -> { });
    }

    public GenerationService(EngineLoop engine, Tokenizer tokenizer, AdmissionControl admission, ServingMetrics metrics,
                             DispatchTraces traces, Runnable ready) {
        this(engine, tokenizer, admission, metrics, traces, ready, SequenceCaps.NONE);
    }

    /**
     * @param ready checked at every submit before admission; throws to refuse the request (a gateway that follows a
     *              router and has no placement yet: {@code NoPlacementException}, UNAVAILABLE / 503)
     * @param caps  positions single sequences can reach (attend offload that failed): a sequence reaching its cap
     *              ends with finish reason length, one whose context is already past it when the cap is lowered
     *              ends so if it has tokens and with 503 / UNAVAILABLE if not
     */
    public GenerationService(EngineLoop engine, Tokenizer tokenizer, AdmissionControl admission, ServingMetrics metrics,
                             DispatchTraces traces, Runnable ready, SequenceCaps caps) {
        this.ready = ready;
        this.caps = caps;
        caps.onLowered(id -> {
            Run r = runs.get(id);
            if (r != null) {
                r.checkCap();
            }
        });
        this.engine = engine;
        this.tokenizer = tokenizer;
        this.admission = admission;
        this.metrics = metrics;
        this.traces = traces;
    }

    /** A running request; cancel when the client goes away or stops reading. */
    public interface Handle {
        /** The client went away (or its deadline passed): counted in the requests metric as {@code cancelled}. */
        void cancel();

        /**
         * The client stopped reading the stream (past admission.max-stream-backlog-bytes): counted as
         * {@value #CLIENT_STALLED}, apart from the clients that went away.
         */
        void cancelStalled();
    }

    /** The requests metric's status of a request whose client stopped reading its stream. */
    public static final String CLIENT_STALLED = "client_stalled";

    /**
     * Admits and submits the request, or throws why not (the engine stopped, no placement, draining, overloaded, a
     * limit): such a refusal counts in the requests metric with its error type, as a request that fails later does.
     */
    public Handle submit(ServingRequest request, CompletionSink sink) {
        var g = request.generation();
        Run run;
        try {
            // First: a dead engine's queue never empties, so admission would answer "full" (429) instead of 503.
            engine.refuseIfStopped();
            ready.run();
            AdmissionControl.Reservation slot = admission.admit(request.tenant(), g.promptIds().length,
                    g.params().maxTokens());
            try {
                // After admission, so a draining or full gateway says so first (the finally releases the slot).
                // Cheaper than the prefill it saves: a prompt no pool can hold while its blocks cannot move out would
                // fill the pool and end with this same 503 (each retry again, until the service is back).
                SequenceCaps.Admitted admitted = caps.admitPrompt(g.promptIds().length)
                        .orElseThrow(() -> offloadFailed(g.promptIds().length, caps.promptPositions()));
                try {
                    run = new Run(request, sink, admitted);
                    run.handle = engine.submit(g, run, request.tenant());
                } catch (RuntimeException e) {
                    admitted.ended(); // not submitted: a probe's claim goes to the next long prompt
                    throw e;
                }
                admitted.submitted(run.handle.sequenceId());
            } finally {
                // Submitted: the engine counts the request from here on (or it was refused).
                slot.release();
            }
        } catch (RuntimeException e) {
            metrics.request(e.getClass().getSimpleName(), request.tenant());
            throw e;
        }
        if (run.cancelRequested) {
            // The engine thread may have stopped the sequence before the handle was stored.
            run.handle.cancel();
        } else if (run.stopRequested) {
            run.handle.stop();
        }
        if (run.endedWithoutHandle) {
            // It even ended: its dispatch record could not be released by id then.
            traces.discard(run.handle.sequenceId());
        }
        if (caps != SequenceCaps.NONE) {
            long id = run.handle.sequenceId();
            runs.put(id, run);
            // A cap lowered, or a token added, before the run was findable here is seen now; one that ended is gone.
            if (run.ended) {
                runs.remove(id);
            } else {
                run.checkCap();
            }
        }
        metrics.admitted(g.promptIds().length);
        log.debug("request {} tenant {} admitted: {} prompt tokens", request.requestId(), request.tenant(),
                g.promptIds().length);
        return new Handle() {
            @Override
            public void cancel() {
                run.cancelByClient("cancelled");
            }

            @Override
            public void cancelStalled() {
                run.cancelByClient(CLIENT_STALLED);
            }
        };
    }

    public AdmissionControl admission() {
        return admission;
    }

    /**
     * Charges an arriving generation request to its tenant's rate ({@link AdmissionControl#chargeRate}), before its
     * body is read; a refusal is counted in {@code requests_total} as the admission's refusals are.
     *
     * @throws OverloadedException when the tenant is over its rate
     */
    public void chargeRate(String tenant) {
        try {
            admission.chargeRate(tenant);
        } catch (OverloadedException e) {
            metrics.request(e.getClass().getSimpleName(), tenant);
            throw e;
        }
    }

    /** A prompt the pool cannot hold while its blocks cannot move to the kvcache-service: 503 / UNAVAILABLE. */
    private OffloadFailedException offloadFailed(int promptTokens, long positions) {
        int retryAfter = caps.retryAfterSeconds();
        return new OffloadFailedException("the prompt's " + promptTokens + " tokens do not fit in the gateway's KV "
                + "cache (" + positions + " positions for this sequence) and offloading its oldest blocks to the "
                + "kvcache-service failed or is unavailable; retry after " + retryAfter + " s", retryAfter);
    }

    private final class Run implements SequenceListener {
        private final ServingRequest request;
        private final CompletionSink sink;
        private final TextAssembler text;
        /** When the API received the request: TTFT and E2E are counted from it (docs/metrics.md). */
        private final long arrival;
        private final AtomicBoolean done = new AtomicBoolean();
        private volatile StepScheduler.Handle handle;
        private volatile boolean cancelRequested;
        private volatile boolean stopRequested;
        /** A stop string or token ended a traced request's text: onFinish completes it, with the trace (engine thread). */
        private boolean stoppedForTrace;
        /** The sequence ended before {@link #handle} was stored: submit releases its dispatch record. */
        private volatile boolean endedWithoutHandle;
        private TokenLogprobs pendingLogprobs;
        /** Set by the engine thread at the first admission, before any token: read by the same thread after. */
        private int cachedPromptTokens;
        private long firstToken;
        private long lastToken;
        private int tokens;
        private int[] ids = new int[16];
        /** Prompt and generated tokens so far (written by the engine thread, read by a lowered cap's). */
        private volatile int length;
        /** Its cap was reached: the stop it asked for ends it with finish reason length (or 503 without tokens). */
        private volatile boolean cut;
        /** The cap it reached (its owner forgets it once the sequence is released). */
        private volatile int cap;
        /** The scheduler has ended the sequence (onFinish or onError). */
        private volatile boolean ended;
        /** E2E (and TPOT) recorded: once per request, however it ends (engine thread). */
        private boolean latencyRecorded;
        /** Its client went away or stopped reading ({@link #cancelByClient}), at {@link #clientEnd}. */
        private volatile boolean endedByClient;
        private volatile long clientEnd;
        /** What admitted its prompt: told when the sequence ends (a probe ended without an offload outcome, maybe). */
        private final SequenceCaps.Admitted admitted;

        Run(ServingRequest request, CompletionSink sink, SequenceCaps.Admitted admitted) {
            this.request = request;
            this.sink = sink;
            this.admitted = admitted;
            this.arrival = request.arrivalNanos();
            // Primed with the prompt: the text is in its context, as vLLM's (a SentencePiece word keeps its space).
            this.text = new TextAssembler(tokenizer, request.generation().promptIds(), request.stop());
            this.length = request.generation().promptIds().length;
        }

        /**
         * Asks the sequence to end at the next step boundary once its context reaches its cap (any thread). The
         * scheduler would otherwise wait for KV blocks the pool cannot give it, and hold up every later admission.
         */
        void checkCap() {
            StepScheduler.Handle h = handle;
            int positions = h == null ? Integer.MAX_VALUE : caps.positions(h.sequenceId());
            if (cut || done.get() || length < positions) {
                return;
            }
            cap = positions;
            cut = true;
            stopSequence();
        }

        /** The scheduler ended the sequence: whatever ended it (a client too, earlier), its latency is recorded now. */
        private void ended() {
            ended = true;
            admitted.ended();
            StepScheduler.Handle h = handle;
            if (h != null) {
                runs.remove(h.sequenceId(), this);
            }
            recordLatency();
        }

        /**
         * E2E and TPOT, once per request the engine took, whether it completed, failed or was cancelled: like TTFT,
         * which its first token records however it ends (docs/metrics.md). E2E ends at its last token; a request
         * without one ends when it did (its client went away, or now). On the engine thread, which wrote the token
         * times: a client's cancel only marks the request, and the scheduler's end of the sequence comes here.
         */
        private void recordLatency() {
            if (latencyRecorded) {
                return;
            }
            latencyRecorded = true;
            long end = tokens > 0 ? lastToken : endedByClient ? clientEnd : metrics.now();
            metrics.finished(end - arrival, firstToken - arrival, tokens);
        }

        /** @param status the requests metric's status: why the client's side ended it */
        void cancelByClient(String status) {
            if (done.compareAndSet(false, true)) {
                clientEnd = metrics.now();
                endedByClient = true;
                metrics.request(status, request.tenant());
                cancelSequence();
            }
        }

        /** Ends the sequence with its result at the next step boundary (StepScheduler.Handle#stop), handle or not. */
        private void stopSequence() {
            stopRequested = true;
            StepScheduler.Handle h = handle;
            if (h != null) {
                h.stop();
            }
        }

        /** Drops the sequence at the next step boundary, whether or not submit has returned its handle yet. */
        private void cancelSequence() {
            cancelRequested = true;
            StepScheduler.Handle h = handle;
            if (h != null) {
                h.cancel();
            }
        }

        @Override
        public void onAdmitted(int cached) {
            cachedPromptTokens = cached;
            sink.onAdmitted(cached);
        }

        @Override
        public void onLogprobs(TokenLogprobs logprobs) {
            pendingLogprobs = logprobs;
        }

        @Override
        public void onToken(int token) {
            if (done.get()) {
                return;
            }
            long now = metrics.now();
            metrics.token(now - arrival, now - lastToken, tokens == 0);
            if (tokens == 0) {
                firstToken = now;
            }
            lastToken = now;
            if (tokens == ids.length) {
                ids = java.util.Arrays.copyOf(ids, tokens * 2);
            }
            ids[tokens++] = token;
            length = request.generation().promptIds().length + tokens;
            // A stop token ends the text before its own (a special token's is empty anyway).
            boolean stopToken = request.stopTokenIds().contains(token);
            String delta = stopToken ? "" : text.add(token);
            TokenLogprobs lp = pendingLogprobs;
            pendingLogprobs = null;
            sink.onToken(token, delta, lp);
            if ((stopToken || text.stopped()) && done.compareAndSet(false, true)) {
                if (request.generation().trace()) {
                    // A traced request's last message carries the prompt's logits and routes, which only the
                    // engine's result has: it ends at the next step boundary with them (onFinish), one step later.
                    stoppedForTrace = true;
                    stopSequence();
                    return;
                }
                // A stop string or token ended the text: finish now and let the scheduler drop the sequence.
                cancelSequence();
                complete("stop", null);
                return;
            }
            if (caps != SequenceCaps.NONE) {
                checkCap();
            }
        }

        @Override
        public void onFinish(GenerationResult result) {
            ended();
            if (stoppedForTrace) {
                complete("stop", result);
            } else if (done.compareAndSet(false, true)) {
                complete(result.finishReason() == FinishReason.STOP && !cut ? "stop" : "length", result);
            } else {
                releaseDispatch();
            }
        }

        private void complete(String reason, GenerationResult result) {
            // E2E ends at the last token (docs/metrics.md), so TPOT is the mean gap between the tokens exactly. A stop
            // string completes the request before the scheduler ends its sequence: recorded here, not again there.
            recordLatency();
            metrics.request("ok", request.tenant());
            String rest = text.finish();
            sink.onComplete(new CompletionSink.Completion(reason, rest, text.text(), java.util.Arrays.copyOf(ids, tokens),
                    result, request.generation().promptIds().length, cachedPromptTokens,
                    releaseDispatch()));
        }

        /**
         * Takes the sequence's dispatch record (engine thread, when the sequence ends). Before submit stored the
         * handle the id is unknown here: submit discards the record then (a token reaches a gRPC sink only after
         * submit returned, so a completed traced request always has its handle by now).
         */
        private PromptDispatch releaseDispatch() {
            StepScheduler.Handle h = handle;
            if (h == null) {
                endedWithoutHandle = true;
                return PromptDispatch.NONE;
            }
            return traces.take(h.sequenceId());
        }

        @Override
        public void onError(Throwable error) {
            ended();
            if (stoppedForTrace) {
                // The text had ended at its stop string already: complete it, without the trace the error took.
                stoppedForTrace = false;
                complete("stop", null);
                return;
            }
            releaseDispatch();
            if (cut && error instanceof CancellationException) {
                // Stopped at its cap while waiting (preempted), or before its first token.
                if (tokens > 0) {
                    if (done.compareAndSet(false, true)) {
                        complete("length", null);
                    }
                    return;
                }
                error = offloadFailed(length, cap);
            } else if (error instanceof PromptOutgrewCacheException e) {
                // The scheduler ended it first: no offload of its own failed (the service looks down, so none was
                // tried) or the cap's stop came after. Either way the kvcache-service could not take its blocks, and
                // the advertised context admits the prompt: not the caller's mistake.
                error = offloadFailed(e.promptTokens(), e.positions());
            }
            if (error instanceof CancellationException) {
                return;
            }
            if (done.compareAndSet(false, true)) {
                metrics.request(error.getClass().getSimpleName(), request.tenant());
                // The text held back for a stop string that did not come (or a character never completed) is
                // part of what was generated: a stream that has sent the rest must send it too.
                sink.onError(error, text.finish());
            }
        }
    }
}
