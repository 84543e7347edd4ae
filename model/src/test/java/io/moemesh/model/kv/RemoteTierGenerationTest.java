package io.moemesh.model.kv;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.generate.PrefixLoader;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A second KV tier under the real scheduler and engine (mixtral-tiny, 16-token blocks), with an in-memory map as
 * the tier: blocks copied out through the {@link BlockSink} and imported into another cache give the logits of a
 * full computation within 1e-5; a {@link PrefixLoader} that holds a sequence back while it "fetches" lets the
 * others run and then admits it with the imported prefix; swapped-out sequences restored from the tier give the
 * reference tokens.
 */
class RemoteTierGenerationTest {
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
        return GenerationRequests.greedy(prompt, tokens, 0);
    }

    private static int[] reference(GenerationRequest r) {
        return GenerationRequests.reference(model, r);
    }

    /** The tier: every block a sink is handed, by hash. */
    private static final class Tier implements BlockSink {
        final Map<BlockHash, BlockContents> blocks = new HashMap<>();

        @Override
        public boolean wants(BlockHash hash) {
            return !blocks.containsKey(hash);
        }

        @Override
        public void accept(BlockContents block) {
            blocks.put(block.hash(), block);
        }

        /** The leading run of {@code chain} it holds. */
        List<BlockContents> run(List<BlockHash> chain) {
            List<BlockContents> out = new ArrayList<>();
            for (BlockHash h : chain) {
                BlockContents b = blocks.get(h);
                if (b == null) {
                    break;
                }
                out.add(b);
            }
            return out;
        }
    }

    private static final class Seen implements SequenceListener {
        int admitted = -1;
        GenerationResult result;
        Throwable error;

        @Override
        public void onAdmitted(int cachedPromptTokens) {
            admitted = cachedPromptTokens;
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

    @Test
    void importedBlocks_giveTheLastPositionsLogitsOfAFullComputation_within1e5() {
        Engine engine = model.localEngine();
        int[] p = prompt(60, 7);
        PrefixCachingKvCache a = cache(16);
        Tier tier = new Tier();
        a.setBlockSink(tier);
        a.acquirePrefix(1, p, "t");
        float[] full = engine.step(List.of(new SequenceStep(1, p, 0, SequenceStep.Logits.LAST, false, "t",
                SequenceStep.Phase.PREFILL)), a).getFirst().logits();
        a.release(1);
        assertThat(tier.blocks).hasSize(3);

        PrefixCachingKvCache b = cache(16);
        assertThat(b.importBlocks(tier.run(b.prefixChain(p, "t", 3)))).isEqualTo(3);
        int cached = b.acquirePrefix(2, p, "t");
        assertThat(cached).isEqualTo(48);
        float[] hit = engine.step(List.of(new SequenceStep(2, Arrays.copyOfRange(p, cached, p.length), cached,
                SequenceStep.Logits.LAST, false, "t", SequenceStep.Phase.PREFILL)), b).getFirst().logits();
        assertThat(hit).containsExactly(full, within(1e-5f));
        b.release(2);
        assertThat(b.audit()).isZero();
    }

    /**
     * Says "not yet" {@code waits} times per sequence with a prompt longer than 32 tokens (others are ready at once),
     * then imports what the tier has of its context.
     */
    private static final class SlowLoader implements PrefixLoader {
        final PrefixCachingKvCache cache;
        final Tier tier;
        final int waits;
        final Map<Long, Integer> asked = new HashMap<>();
        final List<Long> forgotten = new ArrayList<>();
        int resumes;

        SlowLoader(PrefixCachingKvCache cache, Tier tier, int waits) {
            this.cache = cache;
            this.tier = tier;
            this.waits = waits;
        }

        @Override
        public boolean ready(long seqId, int[] context, String tenant, boolean again) {
            int n = context.length > 32 ? asked.merge(seqId, 1, Integer::sum) : waits + 1;
            if (n <= waits) {
                return false;
            }
            asked.remove(seqId);
            resumes += again ? 1 : 0;
            List<BlockHash> chain = cache.prefixChain(context, tenant, (context.length - 1) / 16);
            int local = cache.presentBlocks(chain);
            cache.importBlocks(tier.run(chain.subList(local, chain.size())).stream()
                    .filter(b -> b.chainPosition() >= local).toList());
            return true;
        }

        @Override
        public void forget(long seqId) {
            forgotten.add(seqId);
        }
    }

    @Test
    void aLoadingSequence_waitsWhileOthersRun_thenStartsAfterItsImportedPrefix() {
        int[] p = prompt(50, 9);
        Tier tier = new Tier();
        PrefixCachingKvCache first = cache(16);
        first.setBlockSink(tier);
        StepScheduler s1 = new StepScheduler(model.localEngine(), first, 64, 4, first, PreemptionPolicy.RECOMPUTE);
        s1.submit(greedy(p, 4), new Seen(), "t");
        while (!s1.idle()) {
            s1.step();
        }

        PrefixCachingKvCache cache = cache(32);
        SlowLoader loader = new SlowLoader(cache, tier, 3);
        StepScheduler s = new StepScheduler(model.localEngine(), cache, 64, 4, cache, PreemptionPolicy.RECOMPUTE, loader);
        Seen slow = new Seen();
        GenerationRequest r = greedy(p, 8);
        var handle = s.submit(r, slow, "t");
        assertThat(s.step()).as("the only sequence is loading: nothing to run").isFalse();
        Seen other = new Seen();
        s.submit(greedy(prompt(20, 10), 8), other, "t");
        s.step();
        assertThat(other.admitted).as("admitted while the first loads").isZero();
        assertThat(slow.admitted).isEqualTo(-1);
        while (!s.idle()) {
            s.step();
        }
        assertThat(slow.admitted).as("its three full blocks came from the tier").isEqualTo(48);
        assertThat(slow.result.generatedIds()).containsExactly(reference(r));
        assertThat(loader.forgotten).contains(handle.sequenceId());
        assertThat(cache.audit()).isZero();
    }

    @Test
    void swappedOutSequences_areRestoredFromTheTier_withTheReferenceTokens() {
        // 8 blocks; each sequence needs 7 (50 + 60 positions): they cannot both run to the end, either can alone.
        PrefixCachingKvCache cache = cache(8);
        Tier tier = new Tier();
        List<Long> swapped = new ArrayList<>();
        PreemptionPolicy swap = new PreemptionPolicy() {
            @Override
            public Choice choose(long seqId, int[] tokens, String tenant) {
                return Choice.SWAP_OUT;
            }

            @Override
            public void swapOut(long seqId, int[] tokens, String tenant) {
                swapped.add(seqId);
                for (BlockContents b : cache.copyHeldBlocks(seqId, tier::wants)) {
                    tier.accept(b);
                }
            }
        };
        SlowLoader loader = new SlowLoader(cache, tier, 1);
        StepScheduler s = new StepScheduler(model.localEngine(), cache, 32, 2, cache, swap, loader);
        GenerationRequest a = greedy(prompt(50, 11), 60);
        GenerationRequest b = greedy(prompt(50, 12), 60);
        Seen sa = new Seen();
        Seen sb = new Seen();
        s.submit(a, sa, "t");
        s.submit(b, sb, "t");
        while (!s.idle()) {
            s.step();
        }
        assertThat(sa.error).isNull();
        assertThat(sb.error).isNull();
        assertThat(swapped).isNotEmpty();
        assertThat(loader.resumes).isPositive();
        assertThat(sa.result.generatedIds()).containsExactly(reference(a));
        assertThat(sb.result.generatedIds()).containsExactly(reference(b));
        assertThat(cache.audit()).isZero();
    }
}
