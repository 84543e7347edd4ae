package io.moemesh.gateway.serving;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.dispatch.NoPlacementException;
import io.moemesh.gateway.scheduling.EngineLoop;
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
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The serving metrics of docs/metrics.md as GenerationService records them: the four latency histograms once per
 * request (ITL once per gap) from the request's arrival, and every request in requests_total, those refused at
 * admission included.
 */
class ServingMetricsTest {
    private static final int TOKENS = 5;
    private static MoeModel model;

    private final MeterRegistry registry = new SimpleMeterRegistry();
    private final AtomicInteger waiting = new AtomicInteger();
    private EngineLoop loop;

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @AfterEach
    void stop() {
        if (loop != null) {
            loop.close();
        }
    }

    private GenerationService service(LongSupplier nanoClock, Runnable ready) {
        loop = new EngineLoop(new StepScheduler(model.localEngine(), model.newCache(64), 16, 1), () -> { },
                Duration.ofMillis(10));
        AdmissionControl admission = new AdmissionControl(2, 0, 20, 32, 32, () -> loop.waiting() + waiting.get(),
                System::nanoTime);
        return new GenerationService(loop, model.tokenizer(), admission, new ServingMetrics(registry, nanoClock),
                new DispatchTraces(model.config().numLayers(), 8), ready);
    }

    private static ServingRequest request(long arrivalNanos) {
        return new ServingRequest("r", "t", new GenerationRequest(new int[] {1, 5, 9},
                new SamplingParams(0, 1, 0, OptionalLong.empty(), TOKENS, true), false), List.of(), arrivalNanos);
    }

    /** Submits and waits for the completion. */
    private static CompletionSink.Completion run(GenerationService service, ServingRequest request) {
        CompletableFuture<CompletionSink.Completion> done = new CompletableFuture<>();
        service.submit(request, new CompletionSink() {
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

    private Timer timer(String name) {
        return registry.get(name).timer();
    }

    private double requests(String status) {
        var c = registry.find("moemesh.gateway.requests").tags("status", status, "tenant", "t").counter();
        return c == null ? 0 : c.count();
    }

    @Test
    void ttft_countsFromTheRequestsArrival_notFromItsSubmit() {
        // Every token arrives at clock time 10 s; the API received the request at 3 s (its intake and tokenization
        // took the rest): TTFT and E2E are 7 s, to the nanosecond.
        long arrival = 3_000_000_000L;
        GenerationService service = service(() -> 10_000_000_000L, () -> { });
        run(service, request(arrival));
        assertThat(timer("moemesh.gateway.time.to.first.token").count()).isOne();
        assertThat(timer("moemesh.gateway.time.to.first.token").totalTime(TimeUnit.NANOSECONDS))
                .isEqualTo(7_000_000_000d);
        assertThat(timer("moemesh.gateway.e2e.request.latency").totalTime(TimeUnit.NANOSECONDS))
                .isEqualTo(7_000_000_000d);
    }

    @Test
    void latencyHistograms_eachRecordedOncePerRequest_withTheirRelations() {
        AtomicLong now = new AtomicLong(1_000_000_000L);
        // A clock that moves 1 ms at each reading: every token at a distinct time.
        GenerationService service = service(() -> now.addAndGet(1_000_000), () -> { });
        Timer ttft = timer("moemesh.gateway.time.to.first.token");
        Timer itl = timer("moemesh.gateway.inter.token.latency");
        Timer tpot = timer("moemesh.gateway.time.per.output.token");
        Timer e2e = timer("moemesh.gateway.e2e.request.latency");
        for (int i = 1; i <= 3; i++) {
            double ttftBefore = ttft.totalTime(TimeUnit.NANOSECONDS);
            double itlBefore = itl.totalTime(TimeUnit.NANOSECONDS);
            double tpotBefore = tpot.totalTime(TimeUnit.NANOSECONDS);
            double e2eBefore = e2e.totalTime(TimeUnit.NANOSECONDS);
            long arrival = now.get();
            run(service, request(arrival));
            long end = now.get();

            assertThat(ttft.count()).isEqualTo(i);
            assertThat(e2e.count()).isEqualTo(i);
            assertThat(tpot.count()).isEqualTo(i);
            assertThat(itl.count()).isEqualTo(i * (TOKENS - 1L));
            double t = ttft.totalTime(TimeUnit.NANOSECONDS) - ttftBefore;
            double gaps = itl.totalTime(TimeUnit.NANOSECONDS) - itlBefore;
            double perToken = tpot.totalTime(TimeUnit.NANOSECONDS) - tpotBefore;
            double whole = e2e.totalTime(TimeUnit.NANOSECONDS) - e2eBefore;
            assertThat(t).isPositive().isLessThan(whole);
            assertThat(whole).isLessThanOrEqualTo(end - arrival);
            // E2E = TTFT + the gaps between the tokens, and TPOT their mean.
            assertThat(t + gaps).isCloseTo(whole, within(1.0));
            assertThat(perToken).isCloseTo(gaps / (TOKENS - 1), within(1.0));
        }
        assertThat(registry.get("moemesh.gateway.generation.tokens").counter().count()).isEqualTo(3 * TOKENS);
        assertThat(requests("ok")).isEqualTo(3);
    }

    /**
     * E2E is recorded for every request the engine took, however it ends, as TTFT is: a request cancelled by its
     * client, or failed, after its first token has an E2E (to that token) as it has a TTFT. The engine thread is held
     * at the first token until the request has been ended, so no other token comes first.
     */
    @Test
    void e2e_recordedOnce_forARequestCancelledOrFailedAfterItsFirstToken_asTtftIs() throws Exception {
        long arrival = 3_000_000_000L;
        GenerationService service = service(() -> 10_000_000_000L, () -> { });
        Timer ttft = timer("moemesh.gateway.time.to.first.token");
        Timer e2e = timer("moemesh.gateway.e2e.request.latency");

        endAfterItsFirstToken(service, arrival, GenerationService.Handle::cancel);
        assertThat(requests("cancelled")).isOne();
        assertThat(ttft.count()).isOne();
        assertThat(e2e.count()).as("the cancelled request's E2E").isOne();
        assertThat(e2e.totalTime(TimeUnit.NANOSECONDS)).isEqualTo(7_000_000_000d);

        endAfterItsFirstToken(service, arrival, h -> loop.stopAll(new DrainExpiredException(Duration.ofSeconds(1))));
        assertThat(requests("DrainExpiredException")).isOne();
        assertThat(ttft.count()).isEqualTo(2);
        assertThat(e2e.count()).as("the failed request's E2E").isEqualTo(2);
        assertThat(e2e.totalTime(TimeUnit.NANOSECONDS)).isEqualTo(14_000_000_000d);
    }

    /**
     * Submits a request of 20 tokens, ends it with {@code end} while the engine thread waits in its first token, then
     * waits for the engine to have ended its sequence.
     */
    private void endAfterItsFirstToken(GenerationService service, long arrival,
                                       java.util.function.Consumer<GenerationService.Handle> end)
            throws Exception {
        java.util.concurrent.CountDownLatch first = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch ended = new java.util.concurrent.CountDownLatch(1);
        ServingRequest r = new ServingRequest("r", "t", new GenerationRequest(new int[] {1, 5, 9},
                new SamplingParams(0, 1, 0, OptionalLong.empty(), 20, true), false), List.of(), arrival);
        GenerationService.Handle h = service.submit(r, new CompletionSink() {
            @Override
            public void onToken(int token, String textDelta, TokenLogprobs logprobs) {
                if (first.getCount() > 0) {
                    first.countDown();
                    try {
                        assertThat(ended.await(30, TimeUnit.SECONDS)).isTrue();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            }

            @Override
            public void onComplete(Completion completion) {
            }

            @Override
            public void onError(Throwable error, String restOfText) {
            }
        });
        assertThat(first.await(60, TimeUnit.SECONDS)).isTrue();
        end.accept(h);
        ended.countDown();
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(60)).until(() -> loop.inFlight() == 0);
    }

    /**
     * A stop string completes the request inside its token (recording its E2E there) and has the scheduler drop the
     * sequence, whose end (a CancellationException) comes after: that end records nothing more. So does a traced
     * request, which the stop string ends one step later with the engine's result (onFinish). The stop string is the
     * first character of what the model generates greedily, so it ends the request at its first token.
     */
    @ParameterizedTest(name = "traced {0}")
    @ValueSource(booleans = {false, true})
    void e2e_recordedOnce_forARequestAStopStringEnds(boolean trace) {
        GenerationService service = service(System::nanoTime, () -> { });
        Timer e2e = timer("moemesh.gateway.e2e.request.latency");
        String text = run(service, request(20, false, List.of())).text();
        assertThat(text).as("the greedy text, whose first character is the stop string").isNotEmpty();
        String stop = text.substring(0, Character.charCount(text.codePointAt(0)));
        long before = e2e.count();

        CompletionSink.Completion stopped = run(service, request(20, trace, List.of(stop)));
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(60)).until(() -> loop.inFlight() == 0);

        assertThat(stopped.reason()).isEqualTo("stop");
        assertThat(stopped.generatedIds()).as("ended by the stop string, not by max_tokens").hasSizeLessThan(20);
        if (trace) {
            assertThat(stopped.result()).as("a traced request ends with the engine's result (onFinish)").isNotNull();
        }
        assertThat(e2e.count() - before).as("the stopped request's E2E").isOne();
    }

    private static ServingRequest request(int maxTokens, boolean trace, List<String> stop) {
        return new ServingRequest("r", "t", new GenerationRequest(new int[] {1, 5, 9},
                new SamplingParams(0, 1, 0, OptionalLong.empty(), maxTokens, true), trace), stop, System.nanoTime());
    }

    @Test
    void refusedAtAdmission_countsInRequestsTotal_withItsErrorType() {
        GenerationService service = service(System::nanoTime, () -> { });
        waiting.set(2);
        assertThatThrownBy(() -> service.submit(request(System.nanoTime()), null))
                .isInstanceOf(OverloadedException.class);
        assertThat(requests("OverloadedException")).isOne();

        waiting.set(0);
        service.admission().startDraining();
        assertThatThrownBy(() -> service.submit(request(System.nanoTime()), null))
                .isInstanceOf(DrainingException.class);
        assertThat(requests("DrainingException")).isOne();
        assertThat(timer("moemesh.gateway.e2e.request.latency").count()).as("no latency for a refusal").isZero();
    }

    @Test
    void refusedWithoutAPlacement_countsInRequestsTotal() {
        GenerationService service = service(System::nanoTime, () -> {
            throw new NoPlacementException("no expert placement yet");
        });
        assertThatThrownBy(() -> service.submit(request(System.nanoTime()), null))
                .isInstanceOf(NoPlacementException.class);
        assertThat(requests("NoPlacementException")).isOne();
    }
}
