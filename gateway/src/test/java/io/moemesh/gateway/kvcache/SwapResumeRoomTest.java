package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.Completions;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.GenerationResult;
import io.moemesh.model.generate.Generator;
import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.SequenceListener;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.generate.TokenListener;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.BlockContents;
import io.moemesh.model.kv.BlockHash;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.model.kv.PrefixCachingKvCache;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A swapped-out sequence's resume under the real scheduler and engine (mixtral-tiny, a 16-block pool, 32-token
 * steps) with {@link RemotePrefixes} in {@code swap} mode against the in-memory kvcache.v1 service: it waits for
 * room for its whole restore and then restores what the pool lost, instead of being admitted as soon as its cached
 * blocks and a first chunk fit and recomputing the rest (before, restores stayed 0). The test thread is the engine
 * thread.
 */
class SwapResumeRoomTest {
    private static MoeModel model;
    private static ModelFingerprint fingerprint;
    private final FakeKvCacheService kv = new FakeKvCacheService(16);
    private PrefixCachingKvCache cache;
    private KvCacheClient client;
    private WriteBack writeBack;
    private RemotePrefixes remote;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
        fingerprint = ModelFingerprint.of(model.directory());
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @AfterEach
    void stop() {
        remote.close();
        writeBack.close(Duration.ZERO);
        client.close();
        kv.close();
    }

    private static GenerationRequest greedy(int promptTokens, long seed, int tokens) {
        return new GenerationRequest(model.withBos(Completions.prompt(promptTokens - 1, seed)), new SamplingParams(0, 1,
                0, OptionalLong.empty(), tokens, true), false, 0);
    }

    private static int[] reference(GenerationRequest r) {
        return new Generator(model.localEngine(), model.newCache(1024), 512).generate(List.of(r), TokenListener.NONE)
                .getFirst().generatedIds();
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

    /** {@code n} blocks of a chain no request here has (zero keys and values): another prefix the cache holds. */
    private static List<BlockContents> otherPrefix(int n) {
        ModelConfig c = model.config();
        List<BlockContents> out = new ArrayList<>();
        BlockHash parent = null;
        for (int i = 0; i < n; i++) {
            int[] tokens = new int[16];
            Arrays.fill(tokens, 3 + i);
            BlockHash h = BlockHash.of(parent, tokens, 0, 16, fingerprint, "t");
            out.add(new BlockContents(h, parent, tokens, "t", i, new float[c.numLayers()][16 * c.kvDim()],
                    new float[c.numLayers()][16 * c.kvDim()]));
            parent = h;
        }
        return out;
    }

    /** Steps until every sequence ended (the fetches run on their own thread meanwhile). */
    private static void runToIdle(StepScheduler s, Runnable afterEachStep) {
        await().atMost(Duration.ofSeconds(120)).pollInSameThread().pollInterval(Duration.ofMillis(1)).until(() -> {
            s.step();
            afterEachStep.run();
            return s.idle();
        });
    }

    @Test
    void aSwappedOutSequence_waitsForRoomForItsWholeRestore_thenRestoresIt_withTheReferenceTokens() {
        ModelConfig c = model.config();
        cache = new PrefixCachingKvCache(c.numLayers(), c.kvDim(), 16, 16, fingerprint, true);
        client = new KvCacheClient(NettyChannelBuilder.forTarget(kv.endpoint(),
                TestCertificates.credentials("gateway").channel()).build(), kv.endpoint(), fingerprint,
                new KvPayload(c.numLayers(), c.numKvHeads(), 16, c.headDim()), null);
        writeBack = new WriteBack(client, 256, 256, Duration.ofSeconds(10), 10_000, Duration.ofSeconds(5));
        cache.setBlockSink(writeBack);
        // A (older) ends 20 tokens into its 9th block; B's 8th block fills the pool; A's 9th preempts B, swapped out.
        GenerationRequest a = greedy(120, 1, 20);
        GenerationRequest b = greedy(110, 3, 30);
        // Their prompts are cached already, so both are admitted at once, and the steps that follow are the same
        // every run (no first-admission fetch to wait for).
        StepScheduler warm = new StepScheduler(model.localEngine(), cache, 256, 2, cache, PreemptionPolicy.RECOMPUTE);
        warm.submit(greedy(120, 1, 1), new Seen(), "t");
        warm.submit(greedy(110, 3, 1), new Seen(), "t");
        runToIdle(warm, () -> { });
        remote = new RemotePrefixes(cache, client, writeBack, new TransferRates(), Duration.ofSeconds(20), 1,
                RemotePrefixes.Mode.SWAP, RemotePrefixes.fetchThreads(1));
        StepScheduler s = new StepScheduler(model.localEngine(), cache, 32, 4, cache, remote, remote);
        Seen sa = new Seen();
        Seen sb = new Seen();
        s.submit(a, sa, "t");
        s.submit(b, sb, "t");

        boolean[] lost = {false};
        runToIdle(s, () -> {
            if (remote.swapOuts() == 1 && !lost[0]) {
                // Meanwhile another prefix arrives in the cache and takes the place of B's last 3 blocks (LRU): the
                // pool now has room for B's 4 cached blocks and a first chunk, not for its whole context.
                lost[0] = true;
                assertThat(cache.importBlocks(otherPrefix(3))).isEqualTo(3);
            }
        });

        assertThat(remote.swapOuts()).isOne();
        assertThat(remote.restores()).as("B restored its lost blocks instead of recomputing them").isOne();
        assertThat(remote.restoredBlocks()).isEqualTo(3);
        assertThat(sa.error).isNull();
        assertThat(sb.error).isNull();
        assertThat(sa.result.generatedIds()).containsExactly(reference(a));
        assertThat(sb.result.generatedIds()).containsExactly(reference(b));
    }
}
