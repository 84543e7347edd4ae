package io.moemesh.cli.bench;

import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.kv.PrefixCachingKvCache;

/**
 * The prefix-cache scenario, driven through the {@link StepScheduler} as the gateway's engine loop drives it: a
 * fresh prompt (nothing of it cached: a miss), then the same prompt again (its full blocks cached: a hit), each
 * generating one greedy token. Time to first token is submit → the token, every step on this thread.
 */
final class PrefixRuns {
    private static final String TENANT = "bench";

    /** One request's outcome. */
    record Run(double ttftMillis, int cachedTokens, int firstToken) {
    }

    record Pair(Run miss, Run hit) {
    }

    private final MoeModel model;
    private final PrefixCachingKvCache cache;
    private final StepScheduler scheduler;

    PrefixRuns(MoeModel model, PrefixCachingKvCache cache, int stepTokenBudget) {
        this.model = model;
        this.cache = cache;
        this.scheduler = new StepScheduler(model.localEngine(), cache, stepTokenBudget, 1, cache,
                PreemptionPolicy.RECOMPUTE);
    }

    /**
     * A new prompt of {@code tokens} random ids (seeded), first as a miss, then as a hit. Fails if the miss found
     * anything cached, if the hit found nothing, or if the two first tokens differ (a hit must not change tokens).
     */
    Pair missThenHit(int tokens, long seed) {
        int[] prompt = EngineRuns.randomPrompt(model, tokens, seed);
        Run miss = run(prompt);
        Run hit = run(prompt);
        if (miss.cachedTokens() != 0) {
            throw new IllegalStateException("a fresh prompt found " + miss.cachedTokens() + " tokens cached");
        }
        if (tokens >= 2 * cache.blockTokens() && hit.cachedTokens() == 0) {
            throw new IllegalStateException("the repeated prompt found nothing cached");
        }
        if (miss.firstToken() != hit.firstToken()) {
            throw new IllegalStateException("the prefix-cache hit changed the first token: " + miss.firstToken()
                    + " without, " + hit.firstToken() + " with");
        }
        return new Pair(miss, hit);
    }

    private Run run(int[] prompt) {
        Listener l = new Listener();
        long t0 = System.nanoTime();
        scheduler.submit(new GenerationRequest(prompt, SamplingParams.greedy(1), false), l, TENANT);
        while (l.firstTokenNanos == 0 && l.error == null) {
            scheduler.step();
        }
        long ttft = l.firstTokenNanos - t0;
        while (!scheduler.idle()) {
            scheduler.step();
        }
        if (l.error != null) {
            throw new IllegalStateException("the bench request failed: " + l.error.getMessage(), l.error);
        }
        return new Run(ttft / 1e6, l.cached, l.first);
    }

    private static final class Listener implements SequenceListener {
        long firstTokenNanos;
        int cached = -1;
        int first = -1;
        Throwable error;

        @Override
        public void onAdmitted(int cachedPromptTokens) {
            cached = cachedPromptTokens;
        }

        @Override
        public void onToken(int token) {
            if (firstTokenNanos == 0) {
                firstTokenNanos = System.nanoTime();
                first = token;
            }
        }

        @Override
        public void onFinish(GenerationResult result) {
        }

        @Override
        public void onError(Throwable e) {
            error = e;
        }
    }
}
