package io.moemesh.gateway.kvcache;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;
import static org.awaitility.Awaitility.await;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.gateway.serving.AdmissionControl;
import io.moemesh.gateway.serving.CompletionSink;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.gateway.serving.ServingMetrics;
import io.moemesh.gateway.serving.ServingRequest;
import io.moemesh.gateway.support.FakeKvCacheService;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.generate.TokenLogprobs;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The probe let through while the kvcache-service looks down holds the other long prompts off until its offload
 * settles; when its request ends with no offload outcome (here the engine's cache never offloads: it finishes, or is
 * cancelled), the next long prompt probes at once. Before, prompts were refused for the rest of the probe's window
 * (here, on a frozen clock, for good) with nothing being probed.
 */
class OffloadProbeEndTest {
    private static final long SECOND = 1_000_000_000L;
    /** A pool of 1 block of 4 tokens: a prompt of 6 is longer than the pool. */
    private static final int POOL_BLOCKS = 1;
    private static final int[] LONG_PROMPT = {1, 5, 9, 13, 17, 21};
    private static MoeModel model;
    private final FakeKvCacheService kv = new FakeKvCacheService(WriteBackTest.LAYOUT.blockTokens());
    private final KvCacheClient client = WriteBackTest.clientOf(kv);
    private final AtomicLong now = new AtomicLong(1_000 * SECOND);
    private WriteBack writeBack;
    private AttendOffload offload;
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

    /** The service looks down (3 offloads unanswered), and the refusal window after the last one has passed. */
    @BeforeEach
    void start() throws Exception {
        writeBack = new WriteBack(client, 64, 8, Duration.ofSeconds(10), 1000, Duration.ofSeconds(5));
        offload = new AttendOffload(client, writeBack, 1, 0, Duration.ofSeconds(10), Duration.ofSeconds(5),
                POOL_BLOCKS);
        offload.health().clock(now::get);
        kv.close();
        for (int i = 0; i < AttendOffload.DOWN_AFTER_FAILURES; i++) {
            offload.offload(100 + i, WriteBackTest.chain(1, 60 + i)).get(30, TimeUnit.SECONDS);
        }
        assertThat(offload.promptPositions()).as("refusing").isEqualTo(POOL_BLOCKS * 4);
        now.addAndGet(5 * SECOND);
        loop = new EngineLoop(new StepScheduler(model.localEngine(), model.newCache(64), 16, 1), () -> { },
                Duration.ofMillis(10));
        service = new GenerationService(loop, model.tokenizer(),
                new AdmissionControl(8, 0, 64, 64, 64, loop::waiting, System::nanoTime),
                new ServingMetrics(new SimpleMeterRegistry(), System::nanoTime),
                new DispatchTraces(model.config().numLayers(), 8), () -> { }, offload);
    }

    @AfterEach
    void stop() {
        loop.close();
        offload.close();
        writeBack.close(Duration.ZERO);
        client.close();
    }

    private static ServingRequest longPrompt(int maxTokens) {
        return new ServingRequest("r", "t", new GenerationRequest(LONG_PROMPT,
                new SamplingParams(0, 1, 0, OptionalLong.empty(), maxTokens, true), false), List.of(),
                System.nanoTime());
    }

    private GenerationService.Handle submit(ServingRequest request, CompletableFuture<?> done) {
        return service.submit(request, new CompletionSink() {
            @Override
            public void onToken(int token, String textDelta, TokenLogprobs logprobs) {
            }

            @Override
            public void onComplete(Completion completion) {
                done.complete(null);
            }

            @Override
            public void onError(Throwable error, String restOfText) {
                done.completeExceptionally(error);
            }
        });
    }

    @Test
    void aProbeThatFinishesWithoutAnOffloadOutcome_letsTheNextLongPromptProbe() throws Exception {
        CompletableFuture<Void> probe = new CompletableFuture<>();
        submit(longPrompt(2), probe);
        assertThat(offload.promptPositions()).as("the others are refused while it runs").isEqualTo(POOL_BLOCKS * 4);

        probe.get(60, TimeUnit.SECONDS);

        assertThat(offload.promptPositions()).as("nothing refused: its claim is free").isEqualTo(Integer.MAX_VALUE);
        assertThatCode(() -> submit(longPrompt(1), new CompletableFuture<>())).as("the next probe")
                .doesNotThrowAnyException();
        assertThat(offload.promptPositions()).as("which holds the others off in turn").isEqualTo(POOL_BLOCKS * 4);
    }

    @Test
    void aProbeCancelledBeforeItsOffload_letsTheNextLongPromptProbe() {
        GenerationService.Handle probe = submit(longPrompt(60), new CompletableFuture<>());

        probe.cancel();

        await().atMost(Duration.ofSeconds(60)).until(() -> offload.promptPositions() == Integer.MAX_VALUE);
        assertThatCode(() -> submit(longPrompt(1), new CompletableFuture<>())).as("the next probe")
                .doesNotThrowAnyException();
    }
}
