package io.moemesh.gateway.serving;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A stop token id (the ChatML fallback's end of turn, when the vocabulary has it) ends the text as a stop string
 * does: finish reason stop, the text of the tokens before it, the token itself counted as generated.
 */
class StopTokenIdsTest {
    private static final int[] PROMPT = {1, 5, 9};
    private static MoeModel model;
    private EngineLoop loop;
    private GenerationService service;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @BeforeEach
    void start() {
        loop = new EngineLoop(new StepScheduler(model.localEngine(), model.newCache(64), 16, 1), () -> { },
                Duration.ofMillis(10));
        AdmissionControl admission = new AdmissionControl(4, 0, 1, 32, 32, loop::waiting, System::nanoTime);
        service = new GenerationService(loop, model.tokenizer(), admission,
                new ServingMetrics(new SimpleMeterRegistry(), System::nanoTime),
                new DispatchTraces(model.config().numLayers(), 8));
    }

    @AfterEach
    void stop() {
        loop.close();
    }

    private CompletionSink.Completion run(int maxTokens, Set<Integer> stopIds) {
        CompletableFuture<CompletionSink.Completion> done = new CompletableFuture<>();
        service.submit(new ServingRequest("r", "t", new GenerationRequest(PROMPT,
                new SamplingParams(0, 1, 0, OptionalLong.empty(), maxTokens, true), false),
                List.of(), System.nanoTime(), stopIds), new CompletionSink() {
                    @Override
                    public void onToken(int token, String textDelta, TokenLogprobs logprobs) {
                    }

                    @Override
                    public void onComplete(Completion completion) {
                        done.complete(completion);
                    }

                    @Override
                    public void onError(Throwable error, String restOfText) {
                        done.completeExceptionally(error);
                    }
                });
        return done.orTimeout(60, TimeUnit.SECONDS).join();
    }

    @Test
    void stopTokenId_endsTheTextBeforeIt_withFinishReasonStop() {
        int[] greedy = run(12, Set.of()).generatedIds();
        // The first token that did not come before: generation reaches it only there.
        int at = 1;
        while (at < greedy.length && contains(greedy, at, greedy[at])) {
            at++;
        }
        assertThat(at).as("a token new to the completion in %s", Arrays.toString(greedy)).isLessThan(greedy.length);

        CompletionSink.Completion stopped = run(12, Set.of(greedy[at]));

        assertThat(stopped.reason()).isEqualTo("stop");
        assertThat(stopped.generatedIds()).containsExactly(Arrays.copyOf(greedy, at + 1));
        assertThat(stopped.text()).isEqualTo(run(at, Set.of()).text());
    }

    private static boolean contains(int[] ids, int before, int id) {
        for (int i = 0; i < before; i++) {
            if (ids[i] == id) {
                return true;
            }
        }
        return false;
    }
}
