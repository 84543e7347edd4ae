package io.moemesh.model.kv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.golden.TestModels;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The prefix cache under the real scheduler and engine (mixtral-tiny, 16-token blocks): a hit gives the tokens
 * and logits of a full computation, preempted sequences resume from their cached blocks, and eviction, sharing
 * and cancellation never change a token.
 */
class PrefixCachingGenerationTest {
    private static MoeModel model;
    private static ModelFingerprint fingerprint;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
        fingerprint = ModelFingerprint.of(model.directory());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static PrefixCachingKvCache cache(int blocks) {
        return new PrefixCachingKvCache(model.config().numLayers(), model.config().kvDim(), 16, blocks, fingerprint, true);
    }

    private static int[] prompt(int n, long seed) {
        return GenerationRequests.prompt(model, n, seed);
    }

    private static GenerationRequest greedy(int[] prompt, int tokens) {
        return GenerationRequests.greedy(prompt, tokens, 5);
    }

    private static int[] reference(GenerationRequest r) {
        return GenerationRequests.reference(model, r);
    }

    /** What a listener saw of one sequence. */
    private static final class Seen implements SequenceListener {
        int admitted = -1;
        final List<TokenLogprobs> logprobs = new ArrayList<>();
        final List<Integer> tokens = new ArrayList<>();
        GenerationResult result;
        Throwable error;

        @Override
        public void onAdmitted(int cachedPromptTokens) {
            admitted = cachedPromptTokens;
        }

        @Override
        public void onLogprobs(TokenLogprobs lp) {
            logprobs.add(lp);
        }

        @Override
        public void onToken(int token) {
            tokens.add(token);
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

    private static void drain(StepScheduler s) {
        while (!s.idle()) {
            s.step();
        }
    }

    private static StepScheduler scheduler(PrefixCachingKvCache cache, int budget, int maxRunning) {
        return new StepScheduler(model.localEngine(), cache, budget, maxRunning, cache, PreemptionPolicy.RECOMPUTE);
    }

    @ParameterizedTest(name = "{0}-token prompt: {1} cached")
    @CsvSource({"5, 0", "16, 0", "17, 16", "40, 32", "48, 32", "49, 48", "70, 64"})
    void samePromptTwice_secondReusesItsFullBlocksBeforeTheLastToken_withTheSameTokensAndLogprobs(int length,
                                                                                                  int cached) {
        PrefixCachingKvCache cache = cache(64);
        StepScheduler s = scheduler(cache, 24, 4);
        GenerationRequest r = greedy(prompt(length, length), 10);
        Seen first = new Seen();
        s.submit(r, first, "t");
        drain(s);
        Seen second = new Seen();
        s.submit(r, second, "t");
        drain(s);

        assertThat(first.admitted).isZero();
        assertThat(first.result.cachedPromptTokens()).isZero();
        assertThat(second.admitted).isEqualTo(cached);
        assertThat(second.result.cachedPromptTokens()).isEqualTo(cached);
        assertThat(second.result.generatedIds()).containsExactly(first.result.generatedIds())
                .containsExactly(reference(r));
        for (int i = 0; i < first.logprobs.size(); i++) {
            assertThat(second.logprobs.get(i).topIds()).containsExactly(first.logprobs.get(i).topIds());
            assertThat(second.logprobs.get(i).topLogprobs()).containsExactly(first.logprobs.get(i).topLogprobs(),
                    within(1e-5f));
        }
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aCachedPrefix_givesTheLastPositionsLogitsOfAFullComputation_within1e5() {
        PrefixCachingKvCache cache = cache(32);
        Engine engine = model.localEngine();
        int[] p = prompt(60, 7);
        assertThat(cache.acquirePrefix(1, p, "t")).isZero();
        float[] full = engine.step(List.of(new SequenceStep(1, p, 0, SequenceStep.Logits.LAST, false, "t",
                SequenceStep.Phase.PREFILL)), cache).getFirst().logits();
        cache.release(1);
        int cached = cache.acquirePrefix(2, p, "t");
        assertThat(cached).isEqualTo(48);
        float[] hit = engine.step(List.of(new SequenceStep(2, java.util.Arrays.copyOfRange(p, cached, p.length), cached,
                SequenceStep.Logits.LAST, false, "t", SequenceStep.Phase.PREFILL)), cache).getFirst().logits();
        assertThat(hit).containsExactly(full, within(1e-5f));
        cache.release(2);
        assertThat(cache.audit()).isZero();
    }

    @Test
    void preemptedSequences_resumeFromTheirCachedBlocks_withTheReferenceTokens() {
        // 10 blocks; each sequence needs 7 (50 + 60 positions): they cannot both run to the end, either can alone.
        PrefixCachingKvCache cache = cache(10);
        StepScheduler s = scheduler(cache, 32, 2);
        GenerationRequest a = greedy(prompt(50, 11), 60);
        GenerationRequest b = greedy(prompt(50, 12), 60);
        Seen sa = new Seen();
        Seen sb = new Seen();
        s.submit(a, sa, "t");
        s.submit(b, sb, "t");
        drain(s);
        assertThat(sa.error).isNull();
        assertThat(sb.error).isNull();
        assertThat(sa.result.generatedIds()).containsExactly(reference(a));
        assertThat(sb.result.generatedIds()).containsExactly(reference(b));
        assertThat(sa.admitted + sb.admitted).as("first admissions found nothing").isZero();
        assertThat(cache.servedTokens()).as("tokens a resume took from the cache").isPositive();
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aPromptWhosePrefixWasPartlyEvicted_reusesWhatIsLeft_withTheReferenceTokens() {
        PrefixCachingKvCache cache = cache(12);
        StepScheduler s = scheduler(cache, 512, 4);
        GenerationRequest a = greedy(prompt(70, 21), 4);  // 74 positions: 4 full blocks cached after it
        Seen first = new Seen();
        s.submit(a, first, "t");
        drain(s);
        // 152 positions = 10 blocks: the 8 free ones, then a's two last cached blocks
        s.submit(greedy(prompt(150, 22), 2), new Seen(), "t");
        drain(s);
        Seen again = new Seen();
        s.submit(a, again, "t");
        drain(s);
        assertThat(again.admitted).isEqualTo(32);
        assertThat(again.result.generatedIds()).containsExactly(first.result.generatedIds()).containsExactly(reference(a));
        assertThat(cache.audit()).isZero();
    }

    @Test
    void cancellingASequenceWhoseBlocksAreShared_leavesTheOtherSequencesTokensIntact() {
        PrefixCachingKvCache cache = cache(32);
        StepScheduler s = scheduler(cache, 64, 4);
        GenerationRequest r = greedy(prompt(40, 31), 20);
        Seen first = new Seen();
        StepScheduler.Handle h = s.submit(r, first, "t");
        while (first.tokens.size() < 3) {
            s.step();
        }
        Seen second = new Seen();
        s.submit(r, second, "t");
        s.step();
        assertThat(second.admitted).isEqualTo(32);
        h.cancel();
        drain(s);
        assertThat(first.error).isInstanceOf(java.util.concurrent.CancellationException.class);
        assertThat(second.result.generatedIds()).containsExactly(reference(r));
        assertThat(cache.audit()).isZero();
        assertThat(cache.freeBlocks() + cache.cachedBlocks()).isEqualTo(cache.totalBlocks());
    }

    @Test
    void aTracedRequest_computesEveryPosition_evenWhenItsPromptIsCached() {
        PrefixCachingKvCache cache = cache(32);
        StepScheduler s = scheduler(cache, 64, 4);
        int[] p = prompt(40, 41);
        s.submit(greedy(p, 4), new Seen(), "t");
        drain(s);
        Seen traced = new Seen();
        s.submit(new GenerationRequest(p, SamplingParams.greedy(4), true), traced, "t");
        drain(s);
        assertThat(traced.admitted).isZero();
        assertThat(traced.result.routerTopk()[0].length).isEqualTo(40);
    }
}
