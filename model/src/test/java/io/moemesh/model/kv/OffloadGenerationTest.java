package io.moemesh.model.kv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.LookaheadObserver;
import io.moemesh.model.engine.RemoteAttention;
import io.moemesh.model.engine.RemoteAttentionBatch;
import io.moemesh.model.engine.RemoteAttentionException;
import io.moemesh.model.engine.RouteObserver;
import io.moemesh.model.generate.FinishReason;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.generate.PrefixLoader;
import io.moemesh.model.generate.PromptOutgrewCacheException;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Long sequences' oldest blocks offloaded through a {@link BlockOffload} while they run (mixtral-tiny, 16-token
 * blocks, the real scheduler and engine), with an in-memory "service" that keeps the offloaded copies and computes
 * attention over them: the tokens equal the reference engine's, the sequence holds only its recent blocks, shared
 * prefix blocks stay held by the sequences sharing them, every release is reported, and a failed offload leaves
 * the sequence local.
 */
class OffloadGenerationTest {
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

    private static int[] prompt(int n, long seed) {
        return GenerationRequests.prompt(model, n, seed);
    }

    private static GenerationRequest greedy(int[] prompt, int tokens) {
        return GenerationRequests.greedy(prompt, tokens, 0);
    }

    private static int[] reference(GenerationRequest r) {
        return GenerationRequests.reference(model, r);
    }

    /** Keeps offloaded copies per sequence and attends over them in double precision; can refuse offloads. */
    private static class Service implements BlockOffload, RemoteAttention {
        final int threshold;
        final int keepLocal;
        final Map<Long, List<BlockContents>> pinned = new HashMap<>();
        final List<Long> released = new ArrayList<>();
        boolean refuse;
        int maxPrefix;
        int offloads;

        Service(int threshold, int keepLocal) {
            this.threshold = threshold;
            this.keepLocal = keepLocal;
        }

        @Override
        public int remoteBlocks(int length) {
            return length < threshold ? 0 : Math.max(0, length / 16 - keepLocal);
        }

        @Override
        public CompletableFuture<Outcome> offload(long seqId, List<BlockHash> hashes, List<BlockContents> blocks) {
            offloads++;
            if (refuse) {
                return CompletableFuture.completedFuture(Outcome.FAILED);
            }
            List<BlockContents> have = pinned.computeIfAbsent(seqId, k -> new ArrayList<>());
            assertThat(blocks).as("a copy of every block (it needs them all)").hasSameSizeAs(hashes);
            assertThat(blocks.getFirst().chainPosition()).as("offloads continue the remote run").isEqualTo(have.size());
            have.addAll(blocks);
            return CompletableFuture.completedFuture(Outcome.PINNED);
        }

        @Override
        public void released(long seqId) {
            released.add(seqId);
            pinned.remove(seqId);
        }

        @Override
        public void start(RemoteAttentionBatch batch) {
        }

        @Override
        public void await(RemoteAttentionBatch batch) {
            ModelConfig c = model.config();
            int heads = batch.heads();
            int d = batch.headDim();
            int kvHeads = c.numKvHeads();
            int group = heads / kvHeads;
            int kvDim = kvHeads * d;
            int layer = batch.layer();
            for (int i = 0; i < batch.count(); i++) {
                List<BlockContents> blocks = pinned.get(batch.seqId(i));
                int r = batch.prefix(i);
                maxPrefix = Math.max(maxPrefix, r);
                for (int h = 0; h < heads; h++) {
                    int qo = (i * heads + h) * d;
                    int ko = (h / group) * d;
                    double[] s = new double[r];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < r; j++) {
                        float[] k = blocks.get(j / 16).keys()[layer];
                        double dot = 0;
                        for (int x = 0; x < d; x++) {
                            dot += (double) batch.queries()[qo + x] * k[(j % 16) * kvDim + ko + x];
                        }
                        s[j] = dot * batch.scale();
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < r; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int x = 0; x < d; x++) {
                        double acc = 0;
                        for (int j = 0; j < r; j++) {
                            acc += s[j] * blocks.get(j / 16).values()[layer][(j % 16) * kvDim + ko + x];
                        }
                        batch.output()[qo + x] = (float) (acc / sum);
                    }
                    batch.lse()[i * heads + h] = (float) (max + Math.log(sum));
                }
            }
        }
    }

    /** A service whose offloads stay in flight until {@link #land}; the ones after it complete as stored. */
    private static final class HeldService extends Service {
        private final List<CompletableFuture<Outcome>> held = new ArrayList<>();
        private boolean holding = true;

        HeldService(int threshold) {
            super(threshold, 2);
        }

        @Override
        public CompletableFuture<Outcome> offload(long seqId, List<BlockHash> hashes, List<BlockContents> blocks) {
            CompletableFuture<Outcome> stored = super.offload(seqId, hashes, blocks);
            if (!holding) {
                return stored;
            }
            CompletableFuture<Outcome> later = new CompletableFuture<>();
            held.add(later);
            return later;
        }

        /** The offloads in flight land as stored; later ones are not held. */
        void land() {
            holding = false;
            held.forEach(f -> f.complete(Outcome.PINNED));
        }
    }

    private static final class Seen implements SequenceListener {
        GenerationResult result;
        Throwable error;
        int tokens;

        @Override
        public void onToken(int token) {
            tokens++;
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

    private static Engine engine(RemoteAttention remote) {
        ModelConfig c = model.config();
        return new Engine(c, model.denseWeights(), LocalExperts.fromStore(model.tensors(), c), RouteObserver.NONE,
                LookaheadObserver.NONE, remote);
    }

    @Test
    void aLongSequence_attendsOverItsOffloadedBlocks_withTheReferenceTokens_holdingOnlyItsRecentBlocks() {
        PrefixCachingKvCache cache = new PrefixCachingKvCache(model.config().numLayers(), model.config().kvDim(), 16,
                64, fingerprint, true);
        Service service = new Service(48, 2);
        cache.setBlockOffload(service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);
        GenerationRequest r = greedy(prompt(40, 3), 60);
        Seen seen = new Seen();
        s.submit(r, seen, "t");
        int maxHeld = 0;
        while (!s.idle()) {
            s.step();
            maxHeld = Math.max(maxHeld, cache.usedBlocks());
        }
        assertThat(seen.error).isNull();
        assertThat(seen.result.generatedIds()).containsExactly(reference(r));
        // 100 positions = 6 full blocks: at most 2 full + the partial + the one being filled stay held.
        assertThat(service.maxPrefix).as("positions attended remotely").isGreaterThanOrEqualTo(64);
        assertThat(maxHeld).as("blocks held at once, of 7 a local-only sequence ends with").isLessThanOrEqualTo(5);
        assertThat(service.released).containsExactly(1L);
        assertThat(cache.audit()).isZero();
    }

    @Test
    void offloadedBlocksSharedWithAnotherSequence_stayHeldByIt_andBothGetTheReferenceTokens() {
        PrefixCachingKvCache cache = new PrefixCachingKvCache(model.config().numLayers(), model.config().kvDim(), 16,
                64, fingerprint, true);
        Service service = new Service(48, 1);
        cache.setBlockOffload(service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);
        int[] common = prompt(40, 5);
        int[] other = common.clone();
        other[39] = 7;
        GenerationRequest a = greedy(common, 40);
        GenerationRequest b = greedy(other, 16);
        Seen sa = new Seen();
        Seen sb = new Seen();
        s.submit(a, sa, "t");
        // b starts once a's prompt blocks are cached: it shares a's first two blocks.
        s.step();
        s.step();
        s.submit(b, sb, "t");
        while (!s.idle()) {
            s.step();
            cache.audit();
        }
        assertThat(sa.result.generatedIds()).containsExactly(reference(a));
        assertThat(sb.result.generatedIds()).containsExactly(reference(b));
        assertThat(service.maxPrefix).isPositive();
        assertThat(service.released).containsExactlyInAnyOrder(1L, 2L);
        assertThat(cache.audit()).isZero();
        assertThat(cache.presentBlocks(cache.prefixChain(common, "t", 2))).as("the shared prefix is still cached")
                .isEqualTo(2);
    }

    @Test
    void aRefusedOffload_leavesTheSequenceLocal_andIsNotRetried() {
        PrefixCachingKvCache cache = new PrefixCachingKvCache(model.config().numLayers(), model.config().kvDim(), 16,
                64, fingerprint, true);
        Service service = new Service(32, 1);
        service.refuse = true;
        cache.setBlockOffload(service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);
        GenerationRequest r = greedy(prompt(40, 4), 30);
        Seen seen = new Seen();
        s.submit(r, seen, "t");
        while (!s.idle()) {
            s.step();
        }
        assertThat(seen.result.generatedIds()).containsExactly(reference(r));
        assertThat(service.offloads).isEqualTo(1);
        assertThat(service.maxPrefix).isZero();
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aFailingRemoteAttention_failsOnlyTheStep_andTheSequenceIsReleased() {
        PrefixCachingKvCache cache = new PrefixCachingKvCache(model.config().numLayers(), model.config().kvDim(), 16,
                64, fingerprint, true);
        Service service = new Service(32, 1) {
            @Override
            public void await(RemoteAttentionBatch batch) {
                throw new IllegalStateException("Attend failed: UNAVAILABLE");
            }
        };
        cache.setBlockOffload(service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);
        Seen seen = new Seen();
        s.submit(greedy(prompt(40, 6), 30), seen, "t");
        while (!s.idle()) {
            s.step();
        }
        assertThat(seen.error).isInstanceOf(RemoteAttentionException.class).hasMessageContaining("UNAVAILABLE");
        assertThat(service.released).containsExactly(1L);
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aRemoteAttentionFailureNamingItsSequence_endsOnlyIt_andTheOthersInTheStepGetTheReferenceTokens() {
        Service service = new Service(32, 1) {
            @Override
            public void await(RemoteAttentionBatch batch) {
                throw new RemoteAttentionException("Attend of sequence " + batch.seqId(0) + " failed: UNAVAILABLE",
                        null, java.util.Set.of(batch.seqId(0)));
            }
        };
        PrefixCachingKvCache cache = pool(64, service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);
        Seen longOne = new Seen();
        Seen shortOne = new Seen();
        GenerationRequest r = greedy(prompt(8, 12), 20); // 28 positions: below the threshold, never remote
        long longId = s.submit(greedy(prompt(40, 6), 30), longOne, "t").sequenceId();
        s.submit(r, shortOne, "t");

        runToIdle(s, 200);

        assertThat(longOne.error).isInstanceOf(RemoteAttentionException.class).hasMessageContaining("UNAVAILABLE");
        assertThat(shortOne.error).isNull();
        assertThat(shortOne.result.generatedIds()).containsExactly(reference(r));
        assertThat(service.released).contains(longId);
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aStepRunAgainWithoutASequenceWhoseRemoteAttentionFailed_isNoPrefillSample() {
        int[] failed = {0};
        Service service = new Service(32, 1) {
            @Override
            public void await(RemoteAttentionBatch batch) {
                failed[0]++;
                throw new RemoteAttentionException("Attend of sequence " + batch.seqId(0) + " failed: UNAVAILABLE",
                        null, java.util.Set.of(batch.seqId(0)));
            }
        };
        PrefixCachingKvCache cache = pool(64, service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);
        // The long one's first chunk takes the whole budget; its last 8 tokens, over its offloaded first block, share
        // the next step with the short one's 8-token prompt, and that step's pass fails for the long one.
        s.submit(greedy(prompt(40, 6), 30), new Seen(), "t");
        Seen shortOne = new Seen();
        s.submit(greedy(prompt(8, 12), 4), shortOne, "t");

        s.step();
        assertThat(s.lastStepPrefillTokens()).as("a step whose one pass succeeded").isEqualTo(32);
        s.step();

        assertThat(failed[0]).as("the second step's pass failed").isOne();
        assertThat(s.running()).as("the short one ran on, prefilled in the step run again").isOne();
        // Its time includes the failed pass (up to the Attend timeout): no prefill rate may be drawn from it.
        assertThat(s.lastStepPrefillTokens()).isZero();
        runToIdle(s, 200);
        assertThat(shortOne.error).isNull();
    }

    /** A pool of {@code blocks} 16-token blocks with the offload set. */
    private static PrefixCachingKvCache pool(int blocks, Service service) {
        PrefixCachingKvCache cache = new PrefixCachingKvCache(model.config().numLayers(), model.config().kvDim(), 16,
                blocks, fingerprint, true);
        cache.setBlockOffload(service);
        return cache;
    }

    /** Steps until idle, at most {@code max} steps; asserts it got there. */
    private static void runToIdle(StepScheduler s, int max) {
        for (int i = 0; i < max && !s.idle(); i++) {
            s.step();
        }
        assertThat(s.idle()).as("every sequence ended within %d steps", max).isTrue();
    }

    @Test
    void anOffloadThatNeverFiresWithinThePool_keepsThePoolsBound_aLongerPromptIsRefused_aDecodeEndsWithLength() {
        // 8 blocks = 128 positions; the threshold is past them, so no sequence ever reaches it.
        Service service = new Service(129, 2);
        PrefixCachingKvCache cache = pool(8, service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);

        assertThatThrownBy(() -> s.submit(greedy(prompt(130, 7), 4), new Seen(), "t"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("128 positions");
        GenerationRequest r = greedy(prompt(100, 8), 60);
        Seen seen = new Seen();
        s.submit(r, seen, "t");
        runToIdle(s, 200);

        assertThat(seen.result.finishReason()).isEqualTo(FinishReason.LENGTH);
        assertThat(100 + seen.result.generatedIds().length).isEqualTo(128);
        assertThat(reference(r)).startsWith(seen.result.generatedIds());
        assertThat(service.offloads).isZero();
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aPromptLongerThanThePool_whoseOffloadFailed_endsWithAnError_andTheNextRequestIsServed() {
        Service service = new Service(48, 2);
        service.refuse = true;
        PrefixCachingKvCache cache = pool(8, service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);
        Seen longOne = new Seen();
        Seen next = new Seen();
        s.submit(greedy(prompt(150, 9), 4), longOne, "t");
        GenerationRequest r = greedy(prompt(20, 10), 5);
        s.submit(r, next, "t");

        runToIdle(s, 100);

        // Not a caller's mistake (the prompt was admitted for the context the offload serves): its own type.
        assertThat(longOne.error).isInstanceOfSatisfying(PromptOutgrewCacheException.class, e -> {
            assertThat(e.promptTokens()).isEqualTo(150);
            assertThat(e.positions()).isEqualTo(128);
        }).hasMessageContaining("prompt of 150 tokens").hasMessageContaining("128 positions");
        assertThat(next.result.generatedIds()).containsExactly(reference(r));
        assertThat(service.offloads).isOne();
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aDecodeWhoseOffloadFailed_endsWithLengthWhereThePoolEnds_insteadOfRecomputingItself() {
        Service service = new Service(48, 2);
        service.refuse = true;
        PrefixCachingKvCache cache = pool(8, service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);
        GenerationRequest r = greedy(prompt(60, 11), 120);
        Seen seen = new Seen();
        s.submit(r, seen, "t");

        runToIdle(s, 200);

        assertThat(seen.result.finishReason()).isEqualTo(FinishReason.LENGTH);
        // The token sampled at the pool's last position needs no KV of its own: 129 tokens over 128 positions.
        assertThat(60 + seen.result.generatedIds().length).isEqualTo(129);
        assertThat(reference(r)).startsWith(seen.result.generatedIds());
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aDecodeThatFilledThePool_waitsForItsOffloadInFlight_withoutPreemptingItself_thenGoesOn() {
        // The threshold is the pool's 128 positions: the offload starts when the sequence has filled it.
        HeldService service = new HeldService(128);
        PrefixCachingKvCache cache = pool(8, service);
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, PreemptionPolicy.RECOMPUTE);
        GenerationRequest r = greedy(prompt(100, 12), 60);
        Seen seen = new Seen();
        s.submit(r, seen, "t");
        for (int i = 0; i < 100 && service.offloads == 0; i++) {
            s.step();
        }
        assertThat(seen.tokens).as("128 positions computed, the last one's token sampled").isEqualTo(29);

        for (int i = 0; i < 3; i++) {
            s.step();
        }
        assertThat(seen.tokens).as("no room until the offload lands").isEqualTo(29);
        assertThat(service.released).as("not preempted").isEmpty();
        assertThat(service.offloads).isOne();

        service.land();
        runToIdle(s, 200);

        assertThat(seen.result.generatedIds()).containsExactly(reference(r));
        assertThat(service.maxPrefix).isGreaterThanOrEqualTo(96);
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aDecodeThatOutgrowsThePool_endsAndFreesItsBlocksForTheWaitingRequest_inThatStep_whichReportsWork() {
        Service service = new Service(48, 2);
        service.refuse = true;
        PrefixCachingKvCache cache = pool(8, service);
        // One running at a time: the short request waits for the long one's end.
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 1, cache, PreemptionPolicy.RECOMPUTE);
        Seen longOne = new Seen();
        Seen next = new Seen();
        s.submit(greedy(prompt(60, 11), 120), longOne, "t");
        GenerationRequest r = greedy(prompt(20, 10), 5);
        s.submit(r, next, "t");

        boolean worked = false;
        for (int i = 0; i < 200 && longOne.result == null; i++) {
            worked = s.step();
        }

        assertThat(longOne.result.finishReason()).isEqualTo(FinishReason.LENGTH);
        assertThat(worked).as("the step that ended it did work").isTrue();
        assertThat(next.tokens).as("admitted, prefilled and sampled in that same step").isOne();
        runToIdle(s, 50);
        assertThat(next.result.generatedIds()).containsExactly(reference(r));
        assertThat(cache.audit()).isZero();
    }

    @Test
    void aPromptShortOfBlocks_waitsForItsOwnOffloadInFlight_insteadOfPreemptingALaterArrival() {
        HeldService service = new HeldService(48);
        PrefixCachingKvCache cache = pool(8, service);
        List<Long> preempted = new ArrayList<>();
        PreemptionPolicy recording = (seqId, tokens, tenant) -> {
            preempted.add(seqId);
            return PreemptionPolicy.Choice.RECOMPUTE;
        };
        // The loader holds the long prompt back one step, so the later request runs beside it (one block).
        boolean[] loading = {true};
        long[] longId = {-1};
        PrefixLoader loader = (seqId, context, tenant, again) -> seqId != longId[0] || !loading[0];
        StepScheduler s = new StepScheduler(engine(service), cache, 32, 4, cache, recording, loader);
        GenerationRequest longRequest = greedy(prompt(150, 13), 4);
        GenerationRequest later = greedy(prompt(3, 14), 12);
        Seen longOne = new Seen();
        Seen laterOne = new Seen();
        longId[0] = s.submit(longRequest, longOne, "t").sequenceId();
        s.submit(later, laterOne, "t");
        s.step();
        loading[0] = false;
        // Chunks of 31 beside the decode; its first offload (block 0) starts after 62 positions and is held; at 112
        // positions the pool (7 blocks its, 1 the later request's) is full.
        for (int i = 0; i < 8; i++) {
            s.step();
        }
        assertThat(preempted).as("nobody preempted").isEmpty();
        assertThat(service.offloads).isOne();
        assertThat(longOne.tokens).isZero();
        assertThat(laterOne.tokens).as("the later request decodes meanwhile").isEqualTo(9);

        service.land();
        runToIdle(s, 200);

        assertThat(preempted).isEmpty();
        assertThat(longOne.result.generatedIds()).containsExactly(reference(longRequest));
        assertThat(laterOne.result.generatedIds()).containsExactly(reference(later));
        assertThat(cache.audit()).isZero();
    }
}
