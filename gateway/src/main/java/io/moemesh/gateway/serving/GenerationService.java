package io.moemesh.gateway.serving;

import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.dispatch.PromptDispatch;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.model.generate.FinishReason;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.tokenizer.Tokenizer;
import java.util.concurrent.CancellationException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one path from a public API to the engine: admission, then a sequence on the engine loop whose tokens
 * become text deltas (UTF-8 and stop strings held back), finish reasons, usage and metrics. A traced request's
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

    public GenerationService(EngineLoop engine, Tokenizer tokenizer, AdmissionControl admission, ServingMetrics metrics,
                             DispatchTraces traces) {
        this(engine, tokenizer, admission, metrics, traces, () -> { });
    }

    /**
     * @param ready checked at every submit before admission; throws to refuse the request (a gateway that follows a
     *              router and has no placement yet: {@code NoPlacementException}, UNAVAILABLE / 503)
     */
    public GenerationService(EngineLoop engine, Tokenizer tokenizer, AdmissionControl admission, ServingMetrics metrics,
                             DispatchTraces traces, Runnable ready) {
        this.ready = ready;
        this.engine = engine;
        this.tokenizer = tokenizer;
        this.admission = admission;
        this.metrics = metrics;
        this.traces = traces;
    }

    /** A running request; cancel when the client goes away. */
    public interface Handle {
        void cancel();
    }

    public Handle submit(ServingRequest request, CompletionSink sink) {
        var g = request.generation();
        ready.run();
        admission.admit(request.tenant(), g.promptIds().length, g.params().maxTokens());
        Run run = new Run(request, sink);
        run.handle = engine.submit(g, run, request.tenant());
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
        metrics.admitted(g.promptIds().length);
        log.debug("request {} tenant {} admitted: {} prompt tokens", request.requestId(), request.tenant(),
                g.promptIds().length);
        return run::cancelByClient;
    }

    public AdmissionControl admission() {
        return admission;
    }

    private final class Run implements SequenceListener {
        private final ServingRequest request;
        private final CompletionSink sink;
        private final TextAssembler text;
        private final long arrival = System.nanoTime();
        private final AtomicBoolean done = new AtomicBoolean();
        private volatile StepScheduler.Handle handle;
        private volatile boolean cancelRequested;
        private volatile boolean stopRequested;
        /** A stop string ended a traced request's text: onFinish completes it, with the trace (engine thread). */
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

        Run(ServingRequest request, CompletionSink sink) {
            this.request = request;
            this.sink = sink;
            this.text = new TextAssembler(tokenizer, request.stop());
        }

        void cancelByClient() {
            if (done.compareAndSet(false, true)) {
                metrics.request("cancelled", request.tenant());
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
            long now = System.nanoTime();
            metrics.token(now - arrival, now - lastToken, tokens == 0);
            if (tokens == 0) {
                firstToken = now;
            }
            lastToken = now;
            if (tokens == ids.length) {
                ids = java.util.Arrays.copyOf(ids, tokens * 2);
            }
            ids[tokens++] = token;
            String delta = text.add(token);
            TokenLogprobs lp = pendingLogprobs;
            pendingLogprobs = null;
            sink.onToken(token, delta, lp);
            if (text.stopped() && done.compareAndSet(false, true)) {
                if (request.generation().trace()) {
                    // A traced request's last message carries the prompt's logits and routes, which only the
                    // engine's result has: it ends at the next step boundary with them (onFinish), one step later.
                    stoppedForTrace = true;
                    stopSequence();
                    return;
                }
                // A stop string ended the text: finish now and let the scheduler drop the sequence.
                cancelSequence();
                complete("stop", null);
            }
        }

        @Override
        public void onFinish(GenerationResult result) {
            if (stoppedForTrace) {
                complete("stop", result);
            } else if (done.compareAndSet(false, true)) {
                complete(result.finishReason() == FinishReason.STOP ? "stop" : "length", result);
            } else {
                releaseDispatch();
            }
        }

        private void complete(String reason, GenerationResult result) {
            metrics.finished(System.nanoTime() - arrival, firstToken - arrival, tokens);
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
            if (stoppedForTrace) {
                // The text had ended at its stop string already: complete it, without the trace the error took.
                stoppedForTrace = false;
                complete("stop", null);
                return;
            }
            releaseDispatch();
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
