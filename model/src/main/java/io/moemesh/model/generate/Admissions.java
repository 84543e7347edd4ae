package io.moemesh.model.generate;

import io.moemesh.model.engine.KvCache;
import io.moemesh.model.engine.PrefixSource;
import java.util.ArrayDeque;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * {@link StepScheduler}'s admissions into the step being built: waiting sequences in {@link AdmissionOrder}, each
 * first asked of the {@link PrefixLoader} (its KV may be on its way from another tier: it waits and others are
 * admitted meanwhile, unless it {@linkplain PrefixLoader#holdsPlace holds its place}), then given its cached prefix
 * by the {@link PrefixSource} and the KV for its first chunk. The first whose chunk does not fit ends the step's
 * admissions, so later, smaller requests do not take the blocks it waits for. Engine thread only.
 */
final class Admissions {
    /** The step being built, as the admissions see it. */
    interface Step {
        /** Tokens the step may still take. */
        int budget();

        /** A running sequence went short of KV blocks this step, or one was preempted: nothing is admitted. */
        boolean kvShort();

        /** Adds the admitted sequence's first chunk to the step, taking it from the budget. */
        void addPrefill(SequenceState s);

        /** A sequence left the scheduler: the step did work even if its batch stays empty. */
        void changed();
    }

    private final KvCache cache;
    private final PrefixSource prefixes;
    private final PrefixLoader loader;
    /** The scheduler's own queue and running list (not copies). */
    private final ArrayDeque<SequenceState> waiting;
    private final List<SequenceState> running;
    private final int maxRunning;

    Admissions(KvCache cache, PrefixSource prefixes, PrefixLoader loader, ArrayDeque<SequenceState> waiting,
               List<SequenceState> running, int maxRunning) {
        this.cache = cache;
        this.prefixes = prefixes;
        this.loader = loader;
        this.waiting = waiting;
        this.running = running;
        this.maxRunning = maxRunning;
    }

    /** Admits waiting sequences into {@code step} while it has budget, nothing ran short and the running have room. */
    void admit(Step step) {
        Set<SequenceState> loading = null;
        while (!step.kvShort() && step.budget() > 0 && !waiting.isEmpty() && running.size() < maxRunning) {
            SequenceState s = AdmissionOrder.next(waiting, running, loading);
            if (s == null) {
                break;
            }
            if (!s.request.trace() && !loader.ready(s.id, s.context(0, s.prefillTarget()), s.tenant, s.admittedBefore())) {
                if (loader.holdsPlace(s.id)) {
                    break;
                }
                if (loading == null) {
                    loading = new HashSet<>();
                }
                loading.add(s);
                continue;
            }
            boolean admitted;
            try {
                admitted = admit(s, step.budget());
            } catch (RuntimeException e) {
                // A prefix source that broke its contract (or a listener that threw) loses this sequence, never the
                // scheduler: otherwise it would stay first in line and fail every step again. The request was checked
                // at submit, so the failure is the server's (500 / INTERNAL, logged), not a refused precondition.
                cache.release(s.id);
                waiting.remove(s);
                loader.forget(s.id);
                step.changed();
                s.listener.onError(StepFailedException.admission(s.id, e));
                continue;
            }
            if (!admitted) {
                break;
            }
            waiting.remove(s);
            running.add(s);
            step.addPrefill(s);
        }
    }

    /**
     * Takes the context's available prefix from the prefix source (never for a traced request: a trace covers
     * every position) and reserves the first chunk; false, with nothing held, when the pool has no room.
     */
    private boolean admit(SequenceState s, int budget) {
        int cached = 0;
        if (!s.request.trace()) {
            int[] context = s.context(0, s.prefillTarget());
            cached = prefixes.acquirePrefix(s.id, context, s.tenant);
            if (cached < 0 || cached >= context.length || cached % cache.blockTokens() != 0) {
                cache.release(s.id);
                throw new IllegalStateException("prefix source returned " + cached + " cached positions for a context of "
                        + context.length + " (must be a multiple of " + cache.blockTokens() + " below it)");
            }
        }
        s.prefilled = cached;
        if (!cache.ensureCapacity(s.id, s.prefilled + chunk(cache, s, budget))) {
            cache.release(s.id);
            s.prefilled = 0;
            return false;
        }
        if (!s.admittedBefore()) {
            s.cachedPromptTokens = cached;
            s.listener.onAdmitted(cached);
        }
        return true;
    }

    /**
     * The next prefill chunk's positions: the budget's, and never more than the pool holds past the sequence's remote
     * prefix. With Attend offload a prompt may be longer than the pool (its old blocks move out between chunks); a
     * chunk larger than the pool would not fit even alone, and the sequence would wait at the head of the queue for
     * ever. 0 while the pool holds the sequence's last chunk and its offload has not moved the remote prefix on.
     */
    static int chunk(KvCache cache, SequenceState s, int budget) {
        long room = (long) cache.poolPositions() + cache.remotePrefix(s.id) - s.prefilled;
        return (int) Math.max(0, Math.min(Math.min(budget, s.prefillTarget() - s.prefilled), room));
    }
}
