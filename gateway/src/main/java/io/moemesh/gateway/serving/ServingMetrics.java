package io.moemesh.gateway.serving;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * Latency and throughput of the public APIs, with vLLM's definitions: TTFT (arrival → first token), ITL
 * (between consecutive tokens), TPOT ((E2E − TTFT) / (tokens − 1)), E2E (arrival → last token, or → the request's
 * end when it ended before its first token, failed or cancelled). Arrival is when the API received the request
 * ({@link ServingRequest#arrivalNanos()}), so intake, tokenization and admission count.
 * Names are listed in docs/metrics.md.
 */
public final class ServingMetrics {
    private final MeterRegistry registry;
    private final LongSupplier nanoClock;
    private final Timer ttft;
    private final Timer itl;
    private final Timer tpot;
    private final Timer e2e;
    private final Counter promptTokens;
    private final Counter generationTokens;

    public ServingMetrics(MeterRegistry registry) {
        this(registry, System::nanoTime);
    }

    /** @param nanoClock what token times are read from: {@link System#nanoTime()}, as the arrival times are */
    public ServingMetrics(MeterRegistry registry, LongSupplier nanoClock) {
        this.registry = registry;
        this.nanoClock = nanoClock;
        this.ttft = timer("moemesh.gateway.time.to.first.token", "arrival to first generated token");
        this.itl = timer("moemesh.gateway.inter.token.latency", "time between consecutive generated tokens");
        this.tpot = timer("moemesh.gateway.time.per.output.token", "(e2e - ttft) / (output tokens - 1) per request");
        this.e2e = timer("moemesh.gateway.e2e.request.latency",
                "arrival to last generated token, or to the end of a request that ended before its first token");
        this.promptTokens = Counter.builder("moemesh.gateway.prompt.tokens").description("prompt tokens admitted")
                .register(registry);
        this.generationTokens = Counter.builder("moemesh.gateway.generation.tokens").description("tokens generated")
                .register(registry);
    }

    private Timer timer(String name, String description) {
        return Timer.builder(name).description(description).publishPercentileHistogram()
                .minimumExpectedValue(Duration.ofMillis(1)).maximumExpectedValue(Duration.ofMinutes(10))
                .register(registry);
    }

    /** Now, on the clock arrival times are on. */
    long now() {
        return nanoClock.getAsLong();
    }

    void admitted(int prompt) {
        promptTokens.increment(prompt);
    }

    void token(long sinceArrivalNanos, long sincePreviousNanos, boolean first) {
        generationTokens.increment();
        if (first) {
            ttft.record(Duration.ofNanos(sinceArrivalNanos));
        } else {
            itl.record(Duration.ofNanos(sincePreviousNanos));
        }
    }

    /**
     * E2E, and TPOT with more than one token: once per request the engine took, however it ended (completed, failed,
     * cancelled), as TTFT is recorded for every request that got a first token however it ended.
     */
    void finished(long e2eNanos, long ttftNanos, int tokens) {
        e2e.record(Duration.ofNanos(e2eNanos));
        if (tokens > 1) {
            tpot.record(Duration.ofNanos((e2eNanos - ttftNanos) / (tokens - 1)));
        }
    }

    /**
     * One count per finished request: status is ok, cancelled, client_stalled (the client stopped reading its
     * stream: {@link GenerationService#CLIENT_STALLED}), or the error's type (its class's simple name), also
     * for a request refused before it was admitted (overloaded, draining, no placement).
     */
    public void request(String status, String tenant) {
        registry.counter("moemesh.gateway.requests", "status", status, "tenant", tenant).increment();
    }
}
