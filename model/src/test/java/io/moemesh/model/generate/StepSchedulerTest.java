package io.moemesh.model.generate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.engine.PrefixSource;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CancellationException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class StepSchedulerTest {
    private static MoeModel model;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static List<GenerationRequest> mixedRequests() {
        List<GenerationRequest> out = new ArrayList<>();
        String[] prompts = {"a", "Mixture of experts routes each token", "gRPC streams", "The KV cache grows linearly "
                + "with sequence length, so long prompts need many blocks", "αβγ 🙂"};
        for (int i = 0; i < prompts.length; i++) {
            SamplingParams p = i % 2 == 0 ? new SamplingParams(0, 1, 0, OptionalLong.empty(), 20 + i, true)
                    : new SamplingParams(0.9, 0.95, 0, OptionalLong.of(100 + i), 20 + i, true);
            out.add(new GenerationRequest(model.encodePrompt(prompts[i]), p, false));
        }
        return out;
    }

    private static List<int[]> alone(List<GenerationRequest> requests) {
        List<int[]> out = new ArrayList<>();
        for (GenerationRequest r : requests) {
            Generator g = new Generator(model.localEngine(), model.newCache(512), 512);
            out.add(g.generate(List.of(r), TokenListener.NONE).getFirst().generatedIds());
        }
        return out;
    }

    @Test
    void concurrentRequests_equalEachRunAlone_greedyAndSeeded() {
        List<GenerationRequest> requests = mixedRequests();
        List<GenerationResult> together = new Generator(model.localEngine(), model.newCache(1024), 16)
                .generate(requests, TokenListener.NONE);
        List<int[]> alone = alone(requests);
        for (int i = 0; i < requests.size(); i++) {
            assertThat(together.get(i).generatedIds()).as("request %d", i).containsExactly(alone.get(i));
        }
    }

    /**
     * The sampler's working arrays (24 × vocab bytes, 3.5 MiB at a 151,936-token vocabulary) are the scheduler's, not
     * each sequence's for its whole life: eight sampled sequences running together allocate them once. (That a draw
     * does not depend on what the scratch held before is SamplerTest's; comparing with runs alone would also compare
     * batched arithmetic, which may differ in last bits on another vector width.)
     */
    @Test
    void sampledSequences_shareTheSchedulersSamplerScratch_allocatedOnce() {
        StepScheduler scheduler = new StepScheduler(model.localEngine(), model.newCache(1024), 64, 8);
        List<Events> events = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            events.add(new Events());
            scheduler.submit(new GenerationRequest(model.encodePrompt("prompt " + i),
                    new SamplingParams(0.8, i % 2 == 0 ? 1 : 0.9, i % 3 == 0 ? 20 : 0, OptionalLong.of(7 + i), 6, true),
                    false), events.getLast());
        }
        for (int i = 0; i < 50 && !scheduler.idle(); i++) {
            scheduler.step();
        }
        for (int i = 0; i < events.size(); i++) {
            assertThat(events.get(i).seen.getLast()).as("request %d", i).isInstanceOf(GenerationResult.class);
        }
        assertThat(scheduler.samplerScratch().allocations()).isEqualTo(1);
        assertThat(scheduler.samplerScratch().bytes()).isEqualTo(24L * model.config().vocabSize());
    }

    @Test
    void kvPoolTooSmallForAll_preemptsAndRecomputes_withSameTokens() {
        List<GenerationRequest> requests = mixedRequests();
        // 6 blocks of 16 positions: fewer than the five sequences need together, enough for any one alone.
        PagedKvCache small = new PagedKvCache(model.config().numLayers(), model.config().kvDim(), 16, 6);
        List<GenerationResult> together = new Generator(model.localEngine(), small, 32).generate(requests,
                TokenListener.NONE);
        List<int[]> alone = alone(requests);
        for (int i = 0; i < requests.size(); i++) {
            assertThat(together.get(i).generatedIds()).as("request %d", i).containsExactly(alone.get(i));
        }
        assertThat(small.freeBlocks()).isEqualTo(6);
    }

    @Test
    void sequenceOutgrowingTheWholeCache_endsWithLengthWhereTheCacheEnds_insteadOfBeingRecomputedForever() {
        int[] prompt = model.encodePrompt("Mixture of experts");
        SamplingParams greedy = new SamplingParams(0, 1, 0, OptionalLong.empty(), 60, true);
        // 2 blocks of 16: 32 positions, fewer than the prompt and 60 tokens need even alone.
        PagedKvCache small = new PagedKvCache(model.config().numLayers(), model.config().kvDim(), 16, 2);

        GenerationResult r = assertTimeoutPreemptively(Duration.ofSeconds(60), () -> new Generator(model.localEngine(),
                small, 32).generate(List.of(new GenerationRequest(prompt, greedy, false)), TokenListener.NONE).getFirst());

        assertThat(r.finishReason()).isEqualTo(FinishReason.LENGTH);
        assertThat(prompt.length + r.generatedIds().length).isEqualTo(small.maxSequencePositions()).isEqualTo(32);
        int[] unbounded = new Generator(model.localEngine(), model.newCache(512), 32)
                .generate(List.of(new GenerationRequest(prompt, greedy, false)), TokenListener.NONE).getFirst().generatedIds();
        assertThat(unbounded).startsWith(r.generatedIds());
        assertThat(small.freeBlocks()).isEqualTo(2);
    }

    @Test
    void promptThatFillsTheWholeCache_refusedAtSubmit_namingTheCachesPositions() {
        PagedKvCache small = new PagedKvCache(model.config().numLayers(), model.config().kvDim(), 16, 2);
        StepScheduler scheduler = new StepScheduler(model.localEngine(), small, 64, 8);
        int[] prompt = new int[32];

        assertThatThrownBy(() -> scheduler.submit(new GenerationRequest(prompt, SamplingParams.greedy(4), false),
                new Events()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("prompt of 32 tokens leaves no room to generate within the KV cache's 32 positions");
        assertThat(scheduler.idle()).isTrue();
    }

    @Test
    void cancel_endsTheSequenceWithCancellation_andFreesItsBlocks() {
        Engine engine = model.localEngine();
        PagedKvCache cache = model.newCache(512);
        StepScheduler scheduler = new StepScheduler(engine, cache, 64, 8);
        Events events = new Events();
        StepScheduler.Handle h = scheduler.submit(new GenerationRequest(model.encodePrompt("hello"),
                SamplingParams.greedy(100), false), events);
        scheduler.step();
        scheduler.step();
        h.cancel();
        scheduler.step();
        assertThat(events.seen).hasSize(3);
        assertThat(events.seen.getLast()).isInstanceOf(CancellationException.class);
        assertThat(scheduler.idle()).isTrue();
        assertThat(cache.freeBlocks()).isEqualTo(cache.totalBlocks());
    }

    @Test
    void stop_endsTheSequenceWithItsResultAndTrace_atTheNextStepBoundary_andFreesItsBlocks() {
        PagedKvCache cache = model.newCache(512);
        StepScheduler scheduler = new StepScheduler(model.localEngine(), cache, 64, 8);
        Events events = new Events();
        int[] prompt = model.encodePrompt("hello");
        StepScheduler.Handle h = scheduler.submit(new GenerationRequest(prompt, SamplingParams.greedy(100), true),
                events);
        scheduler.step();
        scheduler.step();
        h.stop();
        scheduler.step();
        assertThat(events.seen).hasSize(3);
        assertThat(events.seen.getLast()).isInstanceOfSatisfying(GenerationResult.class, r -> {
            assertThat(r.finishReason()).isEqualTo(FinishReason.STOP);
            assertThat(r.generatedIds()).containsExactly((int) events.seen.get(0), (int) events.seen.get(1));
            assertThat(r.lastLogits()).isNotNull();
            assertThat(r.routerTopk()).isNotNull();
        });
        assertThat(scheduler.idle()).isTrue();
        assertThat(cache.freeBlocks()).isEqualTo(cache.totalBlocks());
    }

    @Test
    void stop_whilePreemptedWithTokens_endsWithItsResultAndTrace_notACancellation() {
        // 3 blocks of 16: two sequences fit until both pass 16 positions; then the newest (the traced one) is
        // preempted, and it cannot come back while the other holds 2 blocks.
        PagedKvCache small = new PagedKvCache(model.config().numLayers(), model.config().kvDim(), 16, 3);
        StepScheduler scheduler = new StepScheduler(model.localEngine(), small, 64, 8);
        Events other = new Events();
        Events traced = new Events();
        scheduler.submit(new GenerationRequest(model.encodePrompt("hello"), SamplingParams.greedy(40), false), other);
        StepScheduler.Handle h = scheduler.submit(new GenerationRequest(model.encodePrompt("world"),
                SamplingParams.greedy(40), true), traced);
        scheduler.step();
        assertThat(scheduler.running()).as("both admitted").isEqualTo(2);
        for (int i = 0; i < 40 && scheduler.waiting() == 0; i++) {
            scheduler.step();
        }
        assertThat(scheduler.waiting()).as("the traced sequence was preempted").isEqualTo(1);
        assertThat(scheduler.running()).isEqualTo(1);
        assertThat(traced.seen).isNotEmpty().allSatisfy(t -> assertThat(t).isInstanceOf(Integer.class));
        List<Object> tokens = List.copyOf(traced.seen);

        h.stop();
        scheduler.step();

        assertThat(traced.seen).hasSize(tokens.size() + 1);
        assertThat(traced.seen.getLast()).isInstanceOfSatisfying(GenerationResult.class, r -> {
            assertThat(r.finishReason()).isEqualTo(FinishReason.STOP);
            assertThat(r.generatedIds()).containsExactly(tokens.stream().mapToInt(t -> (Integer) t).toArray());
            assertThat(r.lastLogits()).isNotNull();
            assertThat(r.routerTopk()).isNotNull();
        });
        assertThat(scheduler.waiting()).isZero();
        for (int i = 0; i < 100 && !scheduler.idle(); i++) {
            scheduler.step();
        }
        assertThat(other.seen.getLast()).isInstanceOf(GenerationResult.class);
        assertThat(small.freeBlocks()).isEqualTo(3);
    }

    @Test
    void stop_beforeTheFirstToken_isACancellation_itHasNoResult() {
        PagedKvCache cache = model.newCache(512);
        StepScheduler scheduler = new StepScheduler(model.localEngine(), cache, 64, 8);
        Events events = new Events();
        StepScheduler.Handle h = scheduler.submit(new GenerationRequest(model.encodePrompt("hello"),
                SamplingParams.greedy(100), false), events);
        h.stop();
        scheduler.step();
        assertThat(events.seen).singleElement().isInstanceOf(CancellationException.class);
        assertThat(scheduler.idle()).isTrue();
    }

    @Test
    void prefixSourceBreakingItsContract_losesThatSequence_notTheScheduler() {
        PagedKvCache cache = model.newCache(512);
        int[] bad = model.encodePrompt("hello");
        // Claims 3 cached positions, not a multiple of the block size, for one prompt only.
        PrefixSource source = (seqId, tokens, tenant) -> java.util.Arrays.equals(tokens, bad) ? 3 : 0;
        StepScheduler scheduler = new StepScheduler(model.localEngine(), cache, 64, 8, source,
                PreemptionPolicy.RECOMPUTE);
        Events broken = new Events();
        Events fine = new Events();
        scheduler.submit(new GenerationRequest(bad, SamplingParams.greedy(2), false), broken);
        scheduler.submit(new GenerationRequest(model.encodePrompt("world"), SamplingParams.greedy(2), false), fine);
        for (int i = 0; i < 10 && !scheduler.idle(); i++) {
            scheduler.step();
        }
        // The request was valid: the broken source is the server's failure (500 / INTERNAL, logged), not a 412.
        assertThat(broken.seen).singleElement().isInstanceOfSatisfying(StepFailedException.class,
                e -> assertThat(e).hasMessageContaining("prefix source returned 3 cached positions")
                        .hasCauseInstanceOf(IllegalStateException.class));
        assertThat(fine.seen.getLast()).isInstanceOf(GenerationResult.class);
        assertThat(scheduler.idle()).isTrue();
        assertThat(cache.freeBlocks()).isEqualTo(cache.totalBlocks());
    }

    /** Records what one sequence's listener was told. */
    private static final class Events implements SequenceListener {
        final List<Object> seen = new ArrayList<>();

        @Override
        public void onToken(int token) {
            seen.add(token);
        }

        @Override
        public void onFinish(GenerationResult result) {
            seen.add(result);
        }

        @Override
        public void onError(Throwable error) {
            seen.add(error);
        }
    }

    @Test
    void stopAll_endsRunningWaitingAndLaterSequencesWithTheReason_andFreesTheirBlocks() {
        PagedKvCache cache = model.newCache(512);
        // One running at a time: the second request waits behind the first.
        StepScheduler scheduler = new StepScheduler(model.localEngine(), cache, 64, 1);
        Events running = new Events();
        Events waiting = new Events();
        scheduler.submit(new GenerationRequest(model.encodePrompt("hello"), SamplingParams.greedy(100), false), running);
        scheduler.submit(new GenerationRequest(model.encodePrompt("world"), SamplingParams.greedy(100), false), waiting);
        scheduler.step();
        scheduler.step();
        assertThat(scheduler.running()).isEqualTo(1);
        assertThat(scheduler.waiting()).isEqualTo(1);
        IllegalStateException reason = new IllegalStateException("shutting down");

        scheduler.stopAll(reason);
        scheduler.step();

        assertThat(running.seen).hasSize(3).last().isSameAs(reason);
        assertThat(waiting.seen).containsExactly(reason);
        assertThat(scheduler.idle()).isTrue();
        assertThat(cache.freeBlocks()).isEqualTo(cache.totalBlocks());
        Events late = new Events();
        scheduler.submit(new GenerationRequest(model.encodePrompt("late"), SamplingParams.greedy(5), false), late);
        scheduler.step();
        assertThat(late.seen).containsExactly(reason);
    }

    @Test
    void stopAll_withoutReason_refused() {
        StepScheduler scheduler = new StepScheduler(model.localEngine(), model.newCache(64), 64, 1);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> scheduler.stopAll(null))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("reason");
    }

    @Test
    void tenantFairness_aLateTenantIsAdmittedBeforeTheBusyTenantsBacklog() {
        StepScheduler scheduler = new StepScheduler(model.localEngine(), model.newCache(1024), 64, 2);
        List<String> order = new ArrayList<>();
        for (String who : new String[] {"a1", "a2", "a3", "a4", "b1"}) {
            scheduler.submit(new GenerationRequest(model.encodePrompt("hello " + who), SamplingParams.greedy(2), false),
                    new SequenceListener() {
                        boolean first = true;

                        @Override
                        public void onToken(int token) {
                            if (first) {
                                order.add(who);
                                first = false;
                            }
                        }

                        @Override
                        public void onFinish(GenerationResult result) {
                        }

                        @Override
                        public void onError(Throwable error) {
                        }
                    }, who.substring(0, 1));
        }
        while (!scheduler.idle()) {
            scheduler.step();
        }
        assertThat(order.indexOf("b1")).isLessThan(order.indexOf("a3"));
    }

    @Test
    void anAdmittedLongPrompt_getsItsFirstToken_whileShortRequestsKeepArriving() {
        // 8 blocks of 16: the 120-token prompt needs all of them, each short request one (3 + 10 positions).
        PagedKvCache pool = new PagedKvCache(model.config().numLayers(), model.config().kvDim(), 16, 8);
        StepScheduler scheduler = new StepScheduler(model.localEngine(), pool, 64, 8);
        int[] longPrompt = new int[120];
        for (int i = 1; i < longPrompt.length; i++) {
            longPrompt[i] = 2 + i * 37 % (model.config().vocabSize() - 2);
        }
        GenerationRequest longRequest = new GenerationRequest(longPrompt, SamplingParams.greedy(2), false);
        int[] finished = {0};
        boolean[] arriving = {true};
        SequenceListener shortOnes = new SequenceListener() {
            @Override
            public void onToken(int token) {
            }

            @Override
            public void onFinish(GenerationResult result) {
                finished[0]++;
                if (arriving[0]) {
                    scheduler.submit(new GenerationRequest(new int[] {0, 30 + finished[0], 31},
                            SamplingParams.greedy(10), false), this);
                }
            }

            @Override
            public void onError(Throwable error) {
                throw new AssertionError(error);
            }
        };
        for (int i = 0; i < 3; i++) {
            // They end at different steps (4, 7 and 10 tokens), so blocks free one at a time.
            scheduler.submit(new GenerationRequest(new int[] {0, 20 + i, 21}, SamplingParams.greedy(4 + 3 * i), false),
                    shortOnes);
        }
        scheduler.step();
        scheduler.step();
        Events longOne = new Events();
        scheduler.submit(longRequest, longOne);

        int steps = 0;
        while (longOne.seen.isEmpty() && steps < 200) {
            scheduler.step();
            steps++;
        }

        // Its 120 positions at a budget of 64 beside three decoders are two steps; then it takes each block the
        // short requests admitted before it free (about ten steps), and the newer ones wait.
        assertThat(steps).as("steps to the long prompt's first token").isLessThanOrEqualTo(40);
        assertThat(finished[0]).as("the short requests were served meanwhile").isPositive();
        arriving[0] = false;
        while (!scheduler.idle()) {
            scheduler.step();
        }
        int[] alone = new Generator(model.localEngine(), model.newCache(512), 512)
                .generate(List.of(longRequest), TokenListener.NONE).getFirst().generatedIds();
        assertThat(longOne.seen).hasSize(3).startsWith(alone[0], alone[1]);
        assertThat(pool.freeBlocks()).isEqualTo(8);
    }

    @Test
    void aSequencePreemptedInItsPrompt_isAdmittedAgainBeforeAnotherTenantsNewerRequest() {
        // 4 blocks of 16, two running at most: a1 decodes beside a2's long prompt until a1 needs a second block and
        // preempts a2 (the later arrival), prefilled part-way and without a token; b1 waits for a slot meanwhile.
        PagedKvCache pool = new PagedKvCache(model.config().numLayers(), model.config().kvDim(), 16, 4);
        List<Long> admissions = new ArrayList<>();
        PrefixSource recording = (seqId, tokens, tenant) -> {
            admissions.add(seqId);
            return 0;
        };
        StepScheduler scheduler = new StepScheduler(model.localEngine(), pool, 17, 2, recording,
                PreemptionPolicy.RECOMPUTE);
        int[] a2Prompt = new int[60];
        java.util.Arrays.fill(a2Prompt, 1, 60, 5);
        long a1 = scheduler.submit(new GenerationRequest(new int[] {0, 11, 12, 13, 14, 15, 16, 17},
                SamplingParams.greedy(10), false), new Events(), "a").sequenceId();
        long a2 = scheduler.submit(new GenerationRequest(a2Prompt, SamplingParams.greedy(2), false), new Events(), "a")
                .sequenceId();
        scheduler.step();
        assertThat(admissions).containsExactly(a1, a2);
        long b1 = scheduler.submit(new GenerationRequest(new int[] {0, 21, 22}, SamplingParams.greedy(2), false),
                new Events(), "b").sequenceId();

        for (int i = 0; i < 100 && admissions.size() < 3; i++) {
            scheduler.step();
        }

        assertThat(admissions).as("the preempted one resumes first").containsExactly(a1, a2, a2);
        while (!scheduler.idle()) {
            scheduler.step();
        }
        assertThat(admissions).contains(b1);
        assertThat(pool.freeBlocks()).isEqualTo(4);
    }
}
