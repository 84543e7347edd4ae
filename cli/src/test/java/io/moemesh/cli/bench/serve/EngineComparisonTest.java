package io.moemesh.cli.bench.serve;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kv.PrefixCachingKvCache;
import io.moemesh.model.tokenizer.Tokenizer;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * {@code bench serve --compare-engine} on the tiny model, its gateway a backend that records what it was sent: the
 * gateway keeps the full KV blocks of the prompts it served (prefix caching, on by default), the reference engine
 * nothing, so a prompt sent to the gateway a second time would skip prefill there only.
 */
class EngineComparisonTest {
    private static final Path MODEL = TestModels.dir(TestModels.MIXTRAL);
    private static final int BLOCK = PrefixCachingKvCache.DEFAULT_BLOCK_TOKENS;
    private static final int STREAMS = 3;
    private static final int ROUNDS = 2;
    // 40 tokens: two full blocks, the gateway's prefix cache would hand out both.
    private static final EngineComparison.Shape SHAPE = new EngineComparison.Shape(STREAMS, 40, 3, 2, 512, ROUNDS, 0,
            Duration.ofMinutes(1));

    /** A gateway that answers every request with its max_tokens and remembers each prompt's ids in send order. */
    private static final class RecordingGateway implements StreamingBackend {
        final List<int[]> sent = Collections.synchronizedList(new ArrayList<>());

        @Override
        public ModelDescription describe(String model) {
            throw new UnsupportedOperationException("not needed");
        }

        @Override
        public RequestOutcome send(RequestSpec spec, BenchPrompt prompt) {
            sent.add(prompt.ids());
            StreamTimer t = new StreamTimer(0);
            for (int i = 1; i <= prompt.maxTokens(); i++) {
                t.onChunk(i * 1_000_000L);
            }
            return t.finish(prompt.promptTokens(), prompt.maxTokens());
        }

        @Override
        public void close() {
        }
    }

    private static PromptMaker maker(ModelConfig c) {
        // What `bench serve --compare-engine` uses: the model's tokenizer, prompts with ids.
        return new TokenizerPromptMaker(Tokenizer.load(MODEL.resolve("tokenizer.json")),
                c.bosTokenId().map(OptionalInt::of).orElse(OptionalInt.empty()), true);
    }

    private static String firstBlock(int[] ids) {
        return Arrays.toString(Arrays.copyOf(ids, BLOCK));
    }

    @Test
    void compareEngine_noPromptSentToTheGateway_sharesItsFirstBlockWithAnotherOne() {
        ModelConfig c = ModelConfigReader.read(MODEL);
        RecordingGateway gateway = new RecordingGateway();

        EngineComparison.Outcome o = EngineComparison.run(gateway, new StreamingBackend.RequestSpec("m", 0, true),
                maker(c), MODEL, c.maxPositionEmbeddings(), SHAPE, new PrintWriter(new StringWriter()));

        assertThat(o.rounds()).hasSize(ROUNDS);
        assertThat(gateway.sent).hasSize(STREAMS * (1 + ROUNDS)).allSatisfy(ids ->
                assertThat(ids.length).isGreaterThanOrEqualTo(2 * BLOCK));
        // Distinct first blocks: no measured prompt starts with a block the gateway computed for an earlier one
        // (the warm-up's or an earlier round's), so it has to prefill every prompt, as the engine does.
        Set<String> firstBlocks = new HashSet<>();
        for (int[] ids : gateway.sent) {
            assertThat(firstBlocks.add(firstBlock(ids))).as("first block of %s sent before", Arrays.toString(ids))
                    .isTrue();
        }
    }

    @Test
    void compareEngine_eachPass_givesTheEngineAndTheGatewayTheSamePrompts() {
        ModelConfig c = ModelConfigReader.read(MODEL);
        RecordingGateway gateway = new RecordingGateway();
        List<List<String>> enginePasses = new ArrayList<>();

        try (MoeModel m = MoeModel.open(MODEL)) {
            EngineComparison.run(gateway, new StreamingBackend.RequestSpec("m", 0, true), maker(c), (ids, output) -> {
                enginePasses.add(ids.stream().map(Arrays::toString).sorted().toList());
                return EngineBaseline.measure(m, ids, output, 0, SHAPE.engineStepTokens());
            }, c.maxPositionEmbeddings(), SHAPE, new PrintWriter(new StringWriter()));
        }

        // Passes do not overlap (each waits for all of its streams): the gateway's sends come pass by pass.
        List<List<String>> gatewayPasses = new ArrayList<>();
        for (int p = 0; p < 1 + ROUNDS; p++) {
            gatewayPasses.add(gateway.sent.subList(p * STREAMS, (p + 1) * STREAMS).stream().map(Arrays::toString)
                    .sorted().toList());
        }
        assertThat(enginePasses).hasSize(1 + ROUNDS).isEqualTo(gatewayPasses);
        assertThat(new HashSet<>(enginePasses)).as("every pass has prompts of its own").hasSize(1 + ROUNDS);
    }
}
