package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.github.resilience4j.bulkhead.BulkheadConfig;
import io.github.resilience4j.circuitbreaker.CircuitBreakerConfig;
import io.moemesh.gateway.dispatch.ReplicaPicker;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/** moemesh.gateway.dispatch.*, bound as Spring binds it: the picker and the wire dtype by name. */
class DispatchPropertiesTest {

    private static DispatchProperties bind(Map<String, String> properties) {
        return new Binder(new MapConfigurationPropertySource(properties))
                .bindOrCreate("moemesh.gateway.dispatch", DispatchProperties.class);
    }

    @Test
    void defaults_preferVisitedPicker_f32OnTheWire() {
        DispatchProperties d = bind(Map.of());
        assertThat(d.picker()).isSameAs(ReplicaPicker.PREFER_VISITED);
        assertThat(d.wireDtype()).isEqualTo("f32");
    }

    @Test
    void lookaheadPrefetch_offByDefault_modelTopK_64InFlight() {
        LookaheadPrefetchProperties lp = bind(Map.of()).lookaheadPrefetch();
        assertThat(lp.enabled()).isFalse();
        assertThat(lp.topK()).isZero();
        assertThat(lp.maxInFlight()).isEqualTo(64);
        lp = bind(Map.of("moemesh.gateway.dispatch.lookahead-prefetch.enabled", "true",
                "moemesh.gateway.dispatch.lookahead-prefetch.top-k", "4")).lookaheadPrefetch();
        assertThat(lp.enabled()).isTrue();
        assertThat(lp.topK()).isEqualTo(4);
    }

    /** The limits Resilience4j itself accepts, so nothing refused here would have worked. */
    @Test
    void breakerAndBulkheadBounds_areAccepted() {
        DispatchProperties d = bind(Map.of("moemesh.gateway.dispatch.failure-rate-threshold", "100",
                "moemesh.gateway.dispatch.open-state-wait", "1ms", "moemesh.gateway.dispatch.max-concurrent-calls", "1",
                "moemesh.gateway.dispatch.step-deadline", "1ms"));
        assertThat(d.failureRateThreshold()).isEqualTo(100f);
        assertThat(d.openStateWait()).isEqualTo(Duration.ofMillis(1));
        assertThat(d.maxConcurrentCalls()).isEqualTo(1);
        assertThat(bind(Map.of("moemesh.gateway.dispatch.failure-rate-threshold", "0.5")).failureRateThreshold())
                .isEqualTo(0.5f);
        CircuitBreakerConfig.custom().failureRateThreshold(d.failureRateThreshold())
                .waitDurationInOpenState(d.openStateWait()).build();
        BulkheadConfig.custom().maxConcurrentCalls(d.maxConcurrentCalls()).build();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"prefer-visited", "least-loaded", "balanced-experts"})
    void replicaPicker_chosenByName(String name) {
        assertThat(bind(Map.of("moemesh.gateway.dispatch.replica-picker", name)).picker().name()).isEqualTo(name);
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', value = {
            "replica-picker | round-robin | moemesh.gateway.dispatch.replica-picker must be one of prefer-visited, least-loaded, balanced-experts, got 'round-robin'",
            "replica-picker | ''          | moemesh.gateway.dispatch.replica-picker must be one of prefer-visited, least-loaded, balanced-experts, got ''",
            "wire-dtype     | f16         | moemesh.gateway.dispatch.wire-dtype must be f32 or bf16, got f16",
            "lookahead-prefetch.top-k | -1 | moemesh.gateway.dispatch.lookahead-prefetch.top-k must be >= 0 (0 = the model's top-k), got -1",
            "lookahead-prefetch.max-in-flight | 0 | moemesh.gateway.dispatch.lookahead-prefetch.max-in-flight must be >= 1, got 0",
            "failure-rate-threshold | 0     | moemesh.gateway.dispatch.failure-rate-threshold must be in (0, 100], got 0",
            "failure-rate-threshold | -5    | moemesh.gateway.dispatch.failure-rate-threshold must be in (0, 100], got -5",
            "failure-rate-threshold | 100.5 | moemesh.gateway.dispatch.failure-rate-threshold must be in (0, 100], got 100.5",
            "failure-rate-threshold | NaN   | moemesh.gateway.dispatch.failure-rate-threshold must be in (0, 100], got NaN",
            "open-state-wait        | 0ms   | moemesh.gateway.dispatch.open-state-wait must be at least 1ms, got PT0S",
            "open-state-wait        | -1s   | moemesh.gateway.dispatch.open-state-wait must be at least 1ms, got PT-1S",
            "max-concurrent-calls   | 0     | moemesh.gateway.dispatch.max-concurrent-calls must be >= 1, got 0",
            "step-deadline          | 0s    | moemesh.gateway.dispatch.step-deadline must be a positive duration, got PT0S",
            "step-deadline          | -10s  | moemesh.gateway.dispatch.step-deadline must be a positive duration, got PT-10S",
    })
    void badValue_refusedAtStartup_namingThePropertyAndWhatIsAllowed(String property, String value, String message) {
        assertThatThrownBy(() -> bind(Map.of("moemesh.gateway.dispatch." + property, value)))
                .isInstanceOf(BindException.class).rootCause()
                .isInstanceOf(IllegalArgumentException.class).hasMessage(message);
    }
}
