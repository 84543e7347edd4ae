package io.moemesh.kvcache.tier;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.model.MoeModel;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.BlockSink;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * What the SSD tier's optional int8 storage ({@link PayloadEncoding#INT8}) costs, on the shared models' golden
 * prompts: every full block of the prompt is stored as int8 and restored into a fresh cache, the rest of the prompt
 * and {@value #DECODE} greedy tokens are computed over it, and each position's logits are compared with float32 KV
 * (the same positions, fed the float32 run's tokens): the largest logit difference and how often the int8 run's
 * greedy token is the float32 one's (kvcache-service/SSD-TIER.md, INT8).
 */
class Int8KvCostTest {
    private static final int BLOCK_TOKENS = 4;
    private static final int DECODE = 8;
    private static final String TENANT = "t";

    /**
     * The bounds are the measured cost with a margin (README): mixtral-tiny's random weights make its logits
     * sensitive to its K/V (max |diff| 1.42, 37 of 40 greedy tokens kept), qwen2moe-tiny's are not (0.009, 40 of
     * 40). A codec change that loses more precision fails here.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"mixtral-tiny, 2.0, 36", "qwen2moe-tiny, 0.05, 40"})
    void int8Blocks_costWhatTheReadmeSays(String name, float maxLogitDiff, int minAgreeing) {
        try (MoeModel model = MoeModel.open(TestModels.dir(name))) {
            Engine engine = model.localEngine();
            ModelFingerprint fingerprint = ModelFingerprint.of(model.directory());
            int kvHeads = model.config().numKvHeads();
            int headDim = model.config().headDim();
            float worst = 0;
            int agree = 0;
            int positions = 0;
            int restoredTokens = 0;
            for (GoldenCase g : GoldenCase.load(name)) {
                int[] prompt = g.inputIds();
                if (prompt.length <= BLOCK_TOKENS) {
                    continue;
                }
                // float32: the prompt, then greedy tokens; its blocks go to the tier
                PrefixCachingKvCache first = cache(model, fingerprint);
                Tier tier = new Tier();
                first.setBlockSink(tier);
                first.acquirePrefix(1, prompt, TENANT);
                List<float[]> reference = new ArrayList<>();
                int[] tokens = new int[DECODE];
                reference.add(step(engine, first, 1, prompt, 0));
                for (int i = 0; i < DECODE; i++) {
                    tokens[i] = argmax(reference.getLast());
                    if (i + 1 < DECODE) {
                        reference.add(decode(engine, first, 1, tokens[i], prompt.length + i));
                    }
                }
                first.release(1);

                // int8: the prompt's full blocks restored through the int8 encoding, the rest computed over them
                PrefixCachingKvCache second = cache(model, fingerprint);
                List<BlockHash> chain = second.prefixChain(prompt, TENANT, (prompt.length - 1) / BLOCK_TOKENS);
                List<BlockContents> restored = new ArrayList<>();
                for (BlockHash h : chain) {
                    restored.add(int8RoundTrip(tier.blocks.get(h), kvHeads, headDim));
                }
                assertThat(second.importBlocks(restored)).isEqualTo(chain.size());
                int cached = second.acquirePrefix(2, prompt, TENANT);
                assertThat(cached).isEqualTo(chain.size() * BLOCK_TOKENS);
                restoredTokens += cached;
                List<float[]> int8 = new ArrayList<>();
                int8.add(step(engine, second, 2, Arrays.copyOfRange(prompt, cached, prompt.length), cached));
                for (int i = 0; i + 1 < DECODE; i++) {
                    int8.add(decode(engine, second, 2, tokens[i], prompt.length + i));
                }
                second.release(2);

                for (int i = 0; i < reference.size(); i++) {
                    float[] a = reference.get(i);
                    float[] b = int8.get(i);
                    for (int v = 0; v < a.length; v++) {
                        worst = Math.max(worst, Math.abs(a[v] - b[v]));
                    }
                    agree += argmax(a) == argmax(b) ? 1 : 0;
                    positions++;
                }
            }
            System.out.printf("int8 KV, %s: %d positions after %d restored tokens, max |logit diff| %.5f, greedy"
                    + " agreement %d/%d%n", name, positions, restoredTokens, worst, agree, positions);
            assertThat(restoredTokens).as("tokens restored from int8 blocks").isPositive();
            assertThat(worst).as("largest logit difference, int8 vs float32 KV").isLessThan(maxLogitDiff);
            assertThat(positions).isEqualTo(40);
            assertThat(agree).as("greedy tokens equal to float32's").isGreaterThanOrEqualTo(minAgreeing);
        }
    }

    private static PrefixCachingKvCache cache(MoeModel model, ModelFingerprint fingerprint) {
        return new PrefixCachingKvCache(model.config().numLayers(), model.config().kvDim(), BLOCK_TOKENS, 64,
                fingerprint, true);
    }

    private static float[] step(Engine engine, PrefixCachingKvCache cache, long seq, int[] tokens, int start) {
        return engine.step(List.of(new SequenceStep(seq, tokens, start, SequenceStep.Logits.LAST, false, TENANT,
                SequenceStep.Phase.PREFILL)), cache).getFirst().logits();
    }

    private static float[] decode(Engine engine, PrefixCachingKvCache cache, long seq, int token, int pos) {
        return engine.step(List.of(SequenceStep.decode(seq, token, pos, TENANT)), cache).getFirst().logits();
    }

    /**
     * Each layer's K and V through {@link PayloadEncoding#INT8} and back. The encoding quantises rows of {@code
     * headDim} values, each with its own scale; a token-major {@code [blockTokens][kvHeads · headDim]} array is made of
     * the same rows as the service's head-major layout, so the round trip gives the values the service would.
     */
    private static BlockContents int8RoundTrip(BlockContents b, int kvHeads, int headDim) {
        KvLayout layer = new KvLayout(1, kvHeads, headDim, BLOCK_TOKENS);
        float[][] keys = new float[b.keys().length][];
        float[][] values = new float[b.values().length][];
        for (int l = 0; l < keys.length; l++) {
            int n = b.keys()[l].length;
            float[] both = new float[2 * n];
            System.arraycopy(b.keys()[l], 0, both, 0, n);
            System.arraycopy(b.values()[l], 0, both, n, n);
            ByteBuffer payload = ByteBuffer.allocate(PayloadEncoding.INT8.payloadBytes(layer));
            PayloadEncoding.INT8.encode(KvBlock.of(BlockKey.of(b.hash()), layer, both), payload);
            payload.flip();
            FloatBuffer back = PayloadEncoding.INT8.decode(BlockKey.of(b.hash()), layer, payload).floats();
            keys[l] = new float[n];
            values[l] = new float[n];
            back.get(0, keys[l]);
            back.get(n, values[l]);
        }
        return new BlockContents(b.hash(), b.parent(), b.tokens(), b.tenant(), b.chainPosition(), keys, values);
    }

    private static int argmax(float[] x) {
        int best = 0;
        for (int i = 1; i < x.length; i++) {
            if (x[i] > x[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Every block the cache hands over, by hash. */
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
    }
}
