package io.moemesh.model.generate;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.KvCache;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.PrefixSource;
import io.moemesh.model.engine.StepOutput;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Iteration-level scheduling over the engine's batched step API (Orca, OSDI '22; vLLM): each {@link #step()}
 * decodes one token for every running sequence and fills the rest of the token budget with chunks of waiting
 * prompts (chunked prefill, Sarathi-Serve arXiv:2403.02310). New requests join at step boundaries. When the KV
 * pool runs out, the running sequence that arrived last (submitted last, whenever it was admitted) is preempted and
 * later recomputed from its tokens so far, so the oldest request always progresses (vLLM v1's order, by arrival
 * as its priority policy breaks ties, not by admission: a resumed sequence would otherwise be the next victim
 * again). Running prefills take the step's budget in arrival order too, and a preempted sequence's tokens go back
 * to it. A running prefill short of blocks takes a shorter chunk or preempts later arrivals (or, when an offload of
 * its own blocks is in flight, waits for it), and no waiting request is admitted in a step where a running one went
 * short (vLLM v1 admits none after a preemption), so new requests cannot take the blocks an admitted long prompt
 * waits for.
 * A sequence's random draws never depend on batching (each samples with its own generator); its logits may, in
 * their last bits (gateway/README.md, Scheduling). A {@link PrefixLoader} may hold
 * a sequence back from admission while its KV is fetched from another tier (others are admitted meanwhile, unless
 * it {@linkplain PrefixLoader#holdsPlace holds its place}).
 *
 * <p>{@link #submit}, {@link Handle#cancel} and {@link #stopAll} are thread-safe; {@link #step()} runs on one thread.
 */
public final class StepScheduler {
    private final Engine engine;
    private final KvCache cache;
    private final int stepTokenBudget;
    private final int maxRunning;
    private final PreemptionPolicy preemption;
    private final PrefixLoader loader;
    /** {@link #lastStepPrefillTokens}. */
    private volatile int lastPrefillTokens;
    private final ModelConfig c;
    private final ConcurrentLinkedQueue<SequenceState> incoming = new ConcurrentLinkedQueue<>();
    private final ArrayDeque<SequenceState> waiting = new ArrayDeque<>();
    private final List<SequenceState> running = new ArrayList<>();
    private final AtomicLong ids = new AtomicLong();
    /** The step being built: batch.get(i) belongs to members.get(i). */
    private final List<SequenceStep> batch = new ArrayList<>();
    private final List<SequenceState> members = new ArrayList<>();
    /** Set once by {@link #stopAll}: from the next step boundary on every sequence ends with it. */
    private volatile RuntimeException stopReason;
    /** This step a running sequence went short of KV blocks, or one was preempted: nothing is admitted. */
    private boolean kvShort;
    /** Tokens the step being built may still take. */
    private int budget;
    private final Admissions admissions;
    /** The step being built, as {@link #admissions} sees it. */
    private final Admissions.Step building = new Admissions.Step() {
        @Override
        public int budget() {
            return budget;
        }

        @Override
        public boolean kvShort() {
            return kvShort;
        }

        @Override
        public void addPrefill(SequenceState s) {
            StepScheduler.this.addPrefill(s);
        }

        @Override
        public void changed() {
            changed = true;
        }
    };
    /**
     * This step a sequence ended or was preempted: the step did work even with an empty batch, and the caller steps
     * again at once rather than wait as when idle (what changed may let another sequence run).
     */
    private boolean changed;
    /** The last step ran a forward pass (one may only end or preempt sequences). */
    private boolean forwardPass;
    /** Sequences sample on the step's thread one at a time: they share these arrays, each with its own generator. */
    private final SamplerScratch samplerScratch = new SamplerScratch();

    /** Without prefix reuse, recomputing preempted sequences. */
    public StepScheduler(Engine engine, KvCache cache, int stepTokenBudget, int maxRunning) {
        this(engine, cache, stepTokenBudget, maxRunning, PrefixSource.NONE, PreemptionPolicy.RECOMPUTE);
    }

    public StepScheduler(Engine engine, KvCache cache, int stepTokenBudget, int maxRunning, PrefixSource prefixes,
                         PreemptionPolicy preemption) {
        this(engine, cache, stepTokenBudget, maxRunning, prefixes, preemption, PrefixLoader.NONE);
    }

    /** With a loader that brings a sequence's KV in from another tier before its admission. */
    public StepScheduler(Engine engine, KvCache cache, int stepTokenBudget, int maxRunning, PrefixSource prefixes,
                         PreemptionPolicy preemption, PrefixLoader loader) {
        if (stepTokenBudget < 1 || maxRunning < 1) {
            throw new IllegalArgumentException("step token budget and max running sequences must be ≥ 1");
        }
        this.engine = engine;
        this.cache = cache;
        this.stepTokenBudget = stepTokenBudget;
        this.maxRunning = maxRunning;
        this.preemption = preemption;
        this.loader = loader;
        this.c = engine.config();
        this.admissions = new Admissions(cache, prefixes, loader, waiting, running, maxRunning);
    }

    /** A submitted sequence: cancel or stop it (applied at the next step boundary). */
    public interface Handle {
        void cancel();

        /**
         * Ends the sequence at the next step boundary as if it had generated a stop token: its listener gets
         * {@code onFinish} with {@link FinishReason#STOP} and the result (a trace included), where {@link #cancel}
         * gives {@code onError}. For a caller that found a stop string in the text. A sequence that has generated
         * no token yet is cancelled instead (it has no result to return).
         */
        void stop();

        /** The sequence's id in step contexts, KV caches and expert dispatch. */
        long sequenceId();
    }

    public Handle submit(GenerationRequest request, SequenceListener listener) {
        return submit(request, listener, "default");
    }

    /** Submits on behalf of a tenant: admission is FCFS with per-tenant fairness. */
    public Handle submit(GenerationRequest request, SequenceListener listener, String tenant) {
        if (request.promptIds().length >= c.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("prompt of " + request.promptIds().length
                    + " tokens leaves no room to generate within max_position_embeddings " + c.maxPositionEmbeddings());
        }
        if (request.promptIds().length >= cache.maxSequencePositions()) {
            throw new IllegalArgumentException("prompt of " + request.promptIds().length + " tokens leaves no room to "
                    + "generate within the KV cache's " + cache.maxSequencePositions() + " positions");
        }
        for (int id : request.promptIds()) {
            if (id < 0 || id >= c.vocabSize()) {
                throw new IllegalArgumentException("prompt token id " + id + " is outside the vocabulary [0, "
                        + c.vocabSize() + ")");
            }
        }
        SequenceState s = new SequenceState(ids.incrementAndGet(), request, listener, tenant);
        incoming.add(s);
        return new SequenceHandle(s);
    }

    /** Sequences admitted and not finished. */
    public int running() {
        return running.size();
    }

    /** Sequences submitted and not yet running (prefill not started). */
    public int waiting() {
        return waiting.size() + incoming.size();
    }

    /**
     * Ends every sequence, running, waiting and submitted later, with {@code reason} at the next step boundary
     * (their listeners' {@code onError}, KV blocks released): what a server does when its drain grace ends with work
     * left, so each client learns why instead of a broken stream.
     */
    public void stopAll(RuntimeException reason) {
        if (reason == null) {
            throw new IllegalArgumentException("stopAll needs a reason");
        }
        stopReason = reason;
    }

    public boolean idle() {
        return incoming.isEmpty() && waiting.isEmpty() && running.isEmpty();
    }

    /**
     * One iteration. Returns false when there was nothing to do: nothing ran, ended or was preempted (the caller may
     * then wait for new work), true even without a forward pass ({@link #lastStepRanForwardPass}). An engine failure
     * (e.g. no healthy replica of an expert) ends every sequence of that step with it ({@link StepFailedException#of});
     * the others continue. A failed remote attention that names its sequences ends only those ({@link FailedRemotes}).
     * A sequence whose logits are not finite (NaN, +Inf) ends alone with a {@link StepFailedException} (the
     * server's failure) naming it and the token ({@link Sampler}): no token is drawn from such a row.
     */
    public boolean step() {
        changed = false;
        forwardPass = false;
        for (SequenceState s; (s = incoming.poll()) != null; ) {
            waiting.add(s);
        }
        if (stopReason != null) {
            endAll(stopReason);
        }
        dropCancelled();
        batch.clear();
        members.clear();
        kvShort = false;
        budget = stepTokenBudget;
        for (SequenceState s : List.copyOf(running)) {
            if (s.decoding() && running.contains(s) && reserve(s, s.length())) {
                batch.add(SequenceStep.decode(s.id, s.lastToken(), s.length() - 1, s.tenant));
                members.add(s);
                budget--;
            }
        }
        // By arrival, not by admission (a resumed sequence is admitted after newer ones): the oldest prompt takes the
        // budget first, and the later arrivals a prefill short of blocks may preempt are not in the batch yet. A
        // copy: it may preempt them.
        List<SequenceState> prefills = new ArrayList<>();
        for (SequenceState s : running) {
            if (!s.decoding()) {
                prefills.add(s);
            }
        }
        prefills.sort(Comparator.comparingLong(s -> s.id));
        for (SequenceState s : prefills) {
            if (budget > 0 && running.contains(s) && !members.contains(s)) {
                addPrefill(s);
            }
        }
        admissions.admit(building);
        // Until a pass completes: the time of a step whose pass failed is no measure of prefill.
        lastPrefillTokens = 0;
        if (batch.isEmpty()) {
            return changed;
        }
        List<StepOutput> outs;
        forwardPass = true;
        int rows = batch.size();
        try {
            outs = FailedRemotes.step(engine, cache, batch, members, (s, e) -> {
                finish(s);
                s.listener.onError(e);
            });
        } catch (RuntimeException e) {
            RuntimeException told = StepFailedException.of(e);
            for (SequenceState s : List.copyOf(members)) {
                finish(s);
                s.listener.onError(told);
            }
            return true;
        }
        if (batch.size() == rows) {
            // One pass, all of it kept. A step that ran again without sequences whose remote attention failed took
            // the failed pass's time too (up to the Attend timeout): fed to a rate, it would read as a slow prefill.
            lastPrefillTokens = prefillTokens(batch);
        }
        List<SequenceState> stepped = List.copyOf(members);
        List<SequenceStep> steps = List.copyOf(batch);
        for (int i = 0; i < stepped.size(); i++) {
            SequenceState s = stepped.get(i);
            try {
                advance(s, steps.get(i), outs.get(i));
            } catch (RuntimeException e) {
                // A listener that throws loses its sequence, never the scheduler or the other sequences.
                if (running.contains(s)) {
                    finish(s);
                    s.listener.onError(e);
                }
            }
        }
        return true;
    }

    /** The working arrays every sequence samples in (tests: they do not grow with the sequences). */
    SamplerScratch samplerScratch() {
        return samplerScratch;
    }

    /** The last {@link #step()} ran a forward pass (a failed one too). */
    public boolean lastStepRanForwardPass() {
        return forwardPass;
    }

    /**
     * Prefill tokens (prompt chunks and resume recomputation) the last step's forward pass computed, for rate
     * estimates over the step's time: 0 when it ran no pass, or when a pass of it failed (the whole step, or some
     * sequences' remote attention, the step then run again without them: its time includes the failed pass, up to the
     * Attend timeout, so it says nothing of prefill speed).
     */
    public int lastStepPrefillTokens() {
        return lastPrefillTokens;
    }

    /** The next prefill chunk's positions ({@link Admissions#chunk}). */
    private int chunk(SequenceState s, int budget) {
        return Admissions.chunk(cache, s, budget);
    }

    /** Prefill tokens (prompt chunks and resume recomputation) of {@code steps}. */
    private static int prefillTokens(List<SequenceStep> steps) {
        int n = 0;
        for (SequenceStep st : steps) {
            n += st.phase() == SequenceStep.Phase.PREFILL ? st.tokens().length : 0;
        }
        return n;
    }

    /** Adds the sequence's next prefill chunk to the batch, taking it from the budget (nothing when it gets none). */
    private void addPrefill(SequenceState s) {
        int n = chunk(s, budget);
        if (n == 0) {
            // A completed offload moves the remote prefix on when the cache next reserves for the sequence.
            cache.ensureCapacity(s.id, s.prefilled);
            n = chunk(s, budget);
        }
        if (n == 0) {
            // It holds the whole pool past its remote prefix. Only an offload of its blocks makes room: one in flight
            // is waited for (the offload wakes the loop when it settles); with none, nothing ever will.
            if (cache.offloadPending(s.id)) {
                kvShort = true;
            } else {
                outgrown(s);
            }
            return;
        }
        n = fit(s, n);
        if (n == 0) {
            return;
        }
        boolean last = s.prefilled + n == s.prefillTarget();
        SequenceStep.Logits logits = last && !s.resuming() ? SequenceStep.Logits.LAST : SequenceStep.Logits.NONE;
        int[] tokens = s.context(s.prefilled, n);
        batch.add(new SequenceStep(s.id, tokens, s.prefilled, logits, s.request.trace() && !s.resuming(), s.tenant,
                SequenceStep.Phase.PREFILL));
        members.add(s);
        budget -= n;
    }

    /**
     * Reserves the next {@code n} prefill positions of {@code s}, or fewer: the chunk ends at the last block boundary
     * the pool can give now, so an admitted prompt takes blocks as they free instead of waiting for its whole chunk
     * while others take them. With not one more position it waits when an offload of its own blocks is in flight
     * (that lets go of blocks at a coming step boundary, as {@link #reserve} waits for it), else preempts running
     * sequences that arrived after it, last first (vLLM v1: a running request preempts lower-priority ones for its
     * blocks), never itself or an older one, which it waits for; the chunk then grows by the budget their rows gave
     * back. Returns the positions reserved; 0 marks the step short (no admissions).
     */
    private int fit(SequenceState s, int n) {
        int b = cache.blockTokens();
        while (true) {
            for (int end = s.prefilled + n; end > s.prefilled; end = (end - 1) / b * b) {
                if (cache.ensureCapacity(s.id, end)) {
                    return end - s.prefilled;
                }
            }
            kvShort = true;
            if (cache.offloadPending(s.id)) {
                return 0;
            }
            SequenceState victim = lastArrived();
            if (victim.id <= s.id) {
                return 0;
            }
            preempt(victim);
            n = Math.max(n, chunk(s, budget));
        }
    }

    /**
     * Reserves KV for a decode at position length-1; preempts the last-arrived running sequences if the pool is
     * short, {@code s} itself when it is the last. Alone, a sequence always fits: it ends at {@link
     * KvCache#maxSequencePositions} (see {@link #advance}), or, when its blocks were to move to another tier, waits
     * for an offload in flight and ends where the pool ends past its remote prefix when none is.
     */
    private boolean reserve(SequenceState s, int length) {
        while (!cache.ensureCapacity(s.id, length)) {
            if (cache.offloadPending(s.id)) {
                // Its own offload lets go of blocks at a coming step boundary: wait for it, preempting nobody (a
                // preemption of itself would release the offload, and its recompute start another). Nothing is
                // admitted meanwhile, so no newcomer takes those blocks.
                kvShort = true;
                return false;
            }
            if ((long) length > (long) cache.poolPositions() + cache.remotePrefix(s.id)) {
                // It ends, so the step is not short: its blocks are free for the others and for admissions now.
                outgrown(s);
                return false;
            }
            SequenceState victim = lastArrived();
            preempt(victim);
            if (victim == s) {
                return false;
            }
        }
        return true;
    }

    /** The running sequence submitted last: the preemption victim (ids grow with submission). */
    private SequenceState lastArrived() {
        SequenceState last = running.getFirst();
        for (SequenceState r : running) {
            if (r.id > last.id) {
                last = r;
            }
        }
        return last;
    }

    /**
     * Ends a running sequence whose context the pool cannot hold past its remote prefix while nothing of it can move
     * to another tier (the offload failed or never fires for it): with finish reason length when it has tokens, as
     * at {@link KvCache#maxSequencePositions}; a prompt, which has no result, with a {@link
     * PromptOutgrewCacheException} naming the sizes (the tier was unavailable: the prompt was admitted for it).
     */
    private void outgrown(SequenceState s) {
        long holds = (long) cache.poolPositions() + cache.remotePrefix(s.id);
        try {
            if (s.generatedCount() > 0) {
                complete(s, FinishReason.LENGTH);
                return;
            }
            finish(s);
            s.listener.onError(new PromptOutgrewCacheException(s.promptLength(), holds));
        } catch (RuntimeException e) {
            // A listener that throws loses its sequence (ended above), never the scheduler.
        }
    }

    private void preempt(SequenceState s) {
        int[] held = s.context(0, s.cachedPositions());
        if (preemption.choose(s.id, held, s.tenant) == PreemptionPolicy.Choice.SWAP_OUT) {
            preemption.swapOut(s.id, held, s.tenant);
        }
        cache.release(s.id);
        running.remove(s);
        int at = members.indexOf(s);
        if (at >= 0) {
            // Its rows leave the step: the budget they took is the others' again.
            members.remove(at);
            budget += batch.remove(at).tokens().length;
        }
        s.preempt();
        waiting.addFirst(s);
        kvShort = true;
        changed = true;
    }

    private void advance(SequenceState s, SequenceStep step, StepOutput out) {
        if (!s.decoding()) {
            if (out.routes() != null) {
                s.appendRoutes(out.routes(), out.routeWeights());
            }
            s.prefilled += step.tokens().length;
            if (s.prefilled < s.prefillTarget()) {
                return;
            }
            if (s.resuming()) {
                s.resumed();
                return;
            }
            if (s.request.trace()) {
                s.lastLogits = out.logits().clone();
            }
            s.listener.onPrefillComplete();
        }
        int token;
        try {
            token = s.sampler.sample(out.logits(), 0, c.vocabSize(), samplerScratch);
        } catch (IllegalStateException e) {
            // Non-finite logits: the engine's failure, not a refused precondition of the request (that would go out
            // as FAILED_PRECONDITION, unlogged). This sequence ends with it (step() catches it), the others go on.
            throw StepFailedException.notFinite(s.id, e);
        }
        if (s.request.logprobs() >= 0) {
            s.listener.onLogprobs(TokenLogprobs.of(out.logits(), 0, c.vocabSize(), token, s.request.logprobs()));
        }
        s.add(token);
        s.listener.onToken(token);
        SamplingParams p = s.request.params();
        if (!p.ignoreEos() && c.eosTokenIds().contains(token)) {
            complete(s, FinishReason.STOP);
        } else if (s.generatedCount() >= p.maxTokens() || s.length() >= c.maxPositionEmbeddings()
                || s.length() >= cache.maxSequencePositions()) {
            complete(s, FinishReason.LENGTH);
        }
    }

    private void complete(SequenceState s, FinishReason reason) {
        finish(s);
        s.listener.onFinish(s.result(reason));
    }

    private void finish(SequenceState s) {
        cache.release(s.id);
        running.remove(s);
        loader.forget(s.id);
        changed = true;
    }

    private void endAll(RuntimeException reason) {
        for (SequenceState s : List.copyOf(running)) {
            finish(s);
            s.listener.onError(reason);
        }
        for (SequenceState s; (s = waiting.poll()) != null; ) {
            loader.forget(s.id);
            changed = true;
            s.listener.onError(reason);
        }
    }

    private void dropCancelled() {
        for (SequenceState s : List.copyOf(running)) {
            if (s.cancelled()) {
                finish(s);
                s.listener.onError(new CancellationException("cancelled"));
            } else if (s.stopRequested() && s.generatedCount() > 0) {
                complete(s, FinishReason.STOP);
            } else if (s.stopRequested()) {
                finish(s);
                s.listener.onError(new CancellationException("stopped before its first token"));
            }
        }
        for (SequenceState s : List.copyOf(waiting)) {
            if (s.cancelled() || s.stopRequested() && s.generatedCount() == 0) {
                waiting.remove(s);
                loader.forget(s.id);
                changed = true;
                s.listener.onError(new CancellationException("cancelled"));
            } else if (s.stopRequested()) {
                // Preempted with tokens: it has a result (a trace included), which Handle.stop promises, as for a
                // running one. complete() releases what it may still hold (a swapped-out or loading prefix).
                waiting.remove(s);
                complete(s, FinishReason.STOP);
            }
        }
    }
}
