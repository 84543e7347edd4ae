package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.gateway.dispatch.ReplicaPicker;
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
        GatewayProperties.LookaheadPrefetch lp = bind(Map.of()).lookaheadPrefetch();
        assertThat(lp.enabled()).isFalse();
        assertThat(lp.topK()).isZero();
        assertThat(lp.maxInFlight()).isEqualTo(64);
        lp = bind(Map.of("moemesh.gateway.dispatch.lookahead-prefetch.enabled", "true",
                "moemesh.gateway.dispatch.lookahead-prefetch.top-k", "4")).lookaheadPrefetch();
        assertThat(lp.enabled()).isTrue();
        assertThat(lp.topK()).isEqualTo(4);
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
    })
    void unknownName_refusedAtStartup_namingThePropertyAndTheChoices(String property, String value, String message) {
        assertThatThrownBy(() -> bind(Map.of("moemesh.gateway.dispatch." + property, value)))
                .isInstanceOf(BindException.class).rootCause()
                .isInstanceOf(IllegalArgumentException.class).hasMessage(message);
    }
}
