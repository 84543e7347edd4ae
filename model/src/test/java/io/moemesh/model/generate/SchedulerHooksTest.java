package io.moemesh.model.generate;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.ForwardingKvCache;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.engine.PrefixSource;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import io.moemesh.model.golden.TestModels;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The scheduler's seams: each step reaches the engine as a step context (tenant and phase per sequence), the
 * prefix source is asked at admission and its answer skips the prefill of those positions, and the preemption
 * policy is asked what becomes of a preempted sequence's KV.
 */
class SchedulerHooksTest {
    private static MoeModel model;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /** A paged cache that records every step context it is told about. */
    private static final class Recording extends ForwardingKvCache {
        final List<StepContext> started = new ArrayList<>();

        Recording(PagedKvCache pool) {
            super(pool);
        }

        @Override
        public void stepStarted(StepContext step) {
            started.add(step);
        }
    }

    /** Claims {@code cached} positions of every context it is asked about (reserving their blocks). */
    private static final class FixedPrefix implements PrefixSource {
        final PagedKvCache pool;
        final int cached;
        final List<String> asked = new ArrayList<>();

        FixedPrefix(PagedKvCache pool, int cached) {
            this.pool = pool;
            this.cached = cached;
        }

        @Override
        public int acquirePrefix(long seqId, int[] tokens, String tenant) {
            asked.add(tenant + ":" + tokens.length);
            int n = Math.min(cached, (tokens.length - 1) / 16 * 16);
            pool.ensureCapacity(seqId, n);
            return n;
        }
    }

    private static final class Outcome implements SequenceListener {
        final List<Integer> admitted = new ArrayList<>();
        GenerationResult result;
        Throwable error;

        @Override
        public void onAdmitted(int cachedPromptTokens) {
            admitted.add(cachedPromptTokens);
        }

        @Override
        public void onToken(int token) {
        }

        @Override
        public void onFinish(GenerationResult r) {
            result = r;
        }

        @Override
        public void onError(Throwable e) {
            error = e;
        }
    }

    private static int[] prompt(int n) {
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = 1 + (i * 37) % 400;
        }
        return ids;
    }

    private static void run(StepScheduler s) {
        for (int i = 0; i < 500 && !s.idle(); i++) {
            s.step();
        }
        assertThat(s.idle()).isTrue();
    }

    @Test
    void stepContexts_carryEachSequencesTenantAndPhase() {
        Recording cache = new Recording(model.newCache(512));
        StepScheduler s = new StepScheduler(model.localEngine(), cache, 8, 4);
        s.submit(new GenerationRequest(prompt(12), SamplingParams.greedy(3), false), new Outcome(), "acme");
        run(s);
        assertThat(cache.started).hasSizeGreaterThanOrEqualTo(4);
        StepContext first = cache.started.getFirst();
        assertThat(first.sequences().getFirst().phase()).isEqualTo(SequenceStep.Phase.PREFILL);
        assertThat(first.rows()).isEqualTo(8);
        StepContext last = cache.started.getLast();
        assertThat(last.sequences().getFirst().phase()).isEqualTo(SequenceStep.Phase.DECODE);
        assertThat(cache.started).allSatisfy(c -> assertThat(c.tenant(0)).isEqualTo("acme"));
    }

    @Test
    void admission_skipsThePrefillOfThePrefixTheSourceHas_andReportsItOnce() {
        Recording cache = new Recording(model.newCache(512));
        FixedPrefix prefixes = new FixedPrefix(cache.pool(), 32);
        StepScheduler s = new StepScheduler(model.localEngine(), cache, 512, 4, prefixes, PreemptionPolicy.RECOMPUTE);
        Outcome o = new Outcome();
        s.submit(new GenerationRequest(prompt(40), SamplingParams.greedy(2), false), o, "acme");
        run(s);
        assertThat(prefixes.asked).containsExactly("acme:40");
        SequenceStep firstPrefill = cache.started.getFirst().sequences().getFirst();
        assertThat(firstPrefill.startPos()).isEqualTo(32);
        assertThat(firstPrefill.tokens()).hasSize(8);
        assertThat(o.admitted).containsExactly(32);
        assertThat(o.result.cachedPromptTokens()).isEqualTo(32);
        assertThat(cache.pool().freeBlocks()).isEqualTo(cache.pool().totalBlocks());
    }

    @Test
    void tracedRequests_neverAskThePrefixSource_andComputeEveryPosition() {
        Recording cache = new Recording(model.newCache(512));
        FixedPrefix prefixes = new FixedPrefix(cache.pool(), 32);
        StepScheduler s = new StepScheduler(model.localEngine(), cache, 512, 4, prefixes, PreemptionPolicy.RECOMPUTE);
        Outcome o = new Outcome();
        s.submit(new GenerationRequest(prompt(40), SamplingParams.greedy(2), true), o);
        run(s);
        assertThat(prefixes.asked).isEmpty();
        assertThat(cache.started.getFirst().sequences().getFirst().startPos()).isZero();
        assertThat(o.admitted).containsExactly(0);
        assertThat(o.result.routerTopk()[0].length).isEqualTo(40);
        assertThat(o.result.routerWeights()[0].length).isEqualTo(40);
    }

    @Test
    void aPrefixSourceBreakingItsContract_failsThatSequenceFast_holdingNothing() {
        PagedKvCache pool = model.newCache(512);
        PrefixSource wholePrompt = (seqId, tokens, tenant) -> {
            pool.ensureCapacity(seqId, tokens.length);
            return tokens.length;
        };
        StepScheduler s = new StepScheduler(model.localEngine(), pool, 512, 4, wholePrompt, PreemptionPolicy.RECOMPUTE);
        Outcome o = new Outcome();
        s.submit(new GenerationRequest(prompt(32), SamplingParams.greedy(2), false), o);
        s.step();
        // The server's failure (500 / INTERNAL, logged), not a refused precondition: the request was valid.
        assertThat(o.error).isInstanceOf(StepFailedException.class).hasMessageContaining("returned 32 cached")
                .hasCauseInstanceOf(IllegalStateException.class);
        assertThat(o.result).isNull();
        assertThat(s.idle()).isTrue();
        assertThat(pool.freeBlocks()).isEqualTo(pool.totalBlocks());
    }

    @Test
    void preemption_asksThePolicy_swapOutGetsTheHeldContext_andTheSequenceStillFinishesLikeTheReference() {
        // 5 blocks of 16: two 40-token prompts growing to 60 tokens cannot both stay.
        PagedKvCache pool = new PagedKvCache(model.config().numLayers(), model.config().kvDim(), 16, 5);
        List<String> choices = new ArrayList<>();
        PreemptionPolicy swap = new PreemptionPolicy() {
            @Override
            public Choice choose(long seqId, int[] tokens, String tenant) {
                choices.add("choose " + tokens.length);
                return Choice.SWAP_OUT;
            }

            @Override
            public void swapOut(long seqId, int[] tokens, String tenant) {
                choices.add("swap " + tokens.length);
            }
        };
        StepScheduler s = new StepScheduler(model.localEngine(), pool, 64, 4, PrefixSource.NONE, swap);
        Outcome a = new Outcome();
        Outcome b = new Outcome();
        s.submit(new GenerationRequest(prompt(40), SamplingParams.greedy(20), false), a);
        s.submit(new GenerationRequest(prompt(41), SamplingParams.greedy(20), false), b);
        run(s);
        assertThat(choices).isNotEmpty();
        assertThat(choices.getFirst()).startsWith("choose ");
        assertThat(choices.get(1)).isEqualTo("swap " + choices.getFirst().substring(7));
        Generator alone = new Generator(model.localEngine(), model.newCache(256), 512);
        assertThat(a.result.generatedIds()).containsExactly(alone.generate(List.of(new GenerationRequest(prompt(40),
                SamplingParams.greedy(20), false)), TokenListener.NONE).getFirst().generatedIds());
        assertThat(b.result.generatedIds()).containsExactly(new Generator(model.localEngine(), model.newCache(256), 512)
                .generate(List.of(new GenerationRequest(prompt(41), SamplingParams.greedy(20), false)),
                        TokenListener.NONE).getFirst().generatedIds());
        assertThat(pool.freeBlocks()).isEqualTo(5);
    }

    @Test
    void anOlderPrefillThatPreemptsANewerDecoder_getsTheBudgetItsRowGaveBack() {
        // 5 blocks of 16, a budget of 33. The loader holds the older prompt back while the newer request is admitted
        // (3 blocks); then the older one takes 32 positions (2 blocks) beside its decode, and its next chunk finds
        // the pool full: it preempts the newer decoder, whose row leaves the step.
        Recording cache = new Recording(new PagedKvCache(model.config().numLayers(), model.config().kvDim(), 16, 5));
        boolean[] hold = {true};
        long[] older = {-1};
        PrefixLoader loader = (seqId, context, tenant, again) -> seqId != older[0] || !hold[0];
        StepScheduler s = new StepScheduler(model.localEngine(), cache, 33, 4, PrefixSource.NONE,
                PreemptionPolicy.RECOMPUTE, loader);
        Outcome o = new Outcome();
        Outcome d = new Outcome();
        GenerationRequest olderRequest = new GenerationRequest(prompt(70), noEos(3), false);
        GenerationRequest newerRequest = new GenerationRequest(prompt(33), noEos(12), false);
        older[0] = s.submit(olderRequest, o).sequenceId();
        long newer = s.submit(newerRequest, d).sequenceId();
        s.step();
        hold[0] = false;
        s.step();
        s.step();

        StepContext third = cache.started.get(2);
        assertThat(third.sequences()).as("the newer decoder was preempted").singleElement()
                .satisfies(step -> assertThat(step.seqId()).isEqualTo(older[0]));
        assertThat(third.rows()).as("the whole budget").isEqualTo(33);
        run(s);
        assertThat(o.result.generatedIds()).containsExactly(reference(olderRequest));
        assertThat(d.result.generatedIds()).containsExactly(reference(newerRequest));
        assertThat(newer).isGreaterThan(older[0]);
        assertThat(cache.pool().freeBlocks()).isEqualTo(5);
    }

    private static SamplingParams noEos(int tokens) {
        return new SamplingParams(0, 1, 0, java.util.OptionalLong.empty(), tokens, true);
    }

    private static int[] reference(GenerationRequest r) {
        return new Generator(model.localEngine(), model.newCache(256), 512).generate(List.of(r), TokenListener.NONE)
                .getFirst().generatedIds();
    }
}
