package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** moemesh.gateway.health.*: derived defaults and validation messages naming the property. */
class HealthPropertiesTest {

    private static GatewayProperties.Health defaults() {
        return new GatewayProperties.Health(null, null, Duration.ofSeconds(5), Duration.ofSeconds(2), 3, 0,
                Duration.ofSeconds(1));
    }

    @ParameterizedTest(name = "{0} layers x step-deadline {1} s, mesh={2}: engine-stall {3} s, engine-wedged {4} s")
    @CsvSource({
            "32, 10, true,  320, 960",  // Mixtral-8x7B: a step may wait the deadline in every layer
            "4,  10, true,   60, 180",  // the floor
            "32, 10, false,  60, 180",  // experts in-process: no dispatch deadline applies
    })
    void engineLimits_derivedWhenUnset(int layers, int stepDeadlineSeconds, boolean mesh, int stall, int wedged) {
        Duration s = defaults().engineStall(layers, Duration.ofSeconds(stepDeadlineSeconds), mesh);
        assertThat(s).isEqualTo(Duration.ofSeconds(stall));
        assertThat(defaults().engineWedged(s)).isEqualTo(Duration.ofSeconds(wedged));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "engine-stall 0           | PT0S  |       | 5 | 3 | 0     | moemesh.gateway.health.engine-stall must be a positive duration",
            "wedged shorter           | PT60S | PT30S | 5 | 3 | 0     | moemesh.gateway.health.engine-wedged (PT30S) must not be shorter than moemesh.gateway.health.engine-stall (PT1M)",
            "no failures              |       |       | 5 | 0 | 0     | moemesh.gateway.health.http-probe-failures must be >= 1, got 0",
            "port out of range        |       |       | 5 | 3 | 70000 | moemesh.gateway.health.http-probe-port must be in [0, 65535], got 70000",
            "interval 0               |       |       | 0 | 3 | 0     | moemesh.gateway.health.http-probe-interval must be a positive duration",
    })
    void invalid_refusedNamingTheProperty(String rule, Duration stall, Duration wedged, int intervalSeconds, int failures,
                                          int port, String message) {
        assertThatThrownBy(() -> new GatewayProperties.Health(stall, wedged, Duration.ofSeconds(intervalSeconds),
                Duration.ofSeconds(2), failures, port, Duration.ofSeconds(1)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith(message);
    }

    @org.junit.jupiter.api.Test
    void engineWedgedSet_shorterThanTheDerivedStall_refused() {
        GatewayProperties.Health h = new GatewayProperties.Health(null, Duration.ofSeconds(90), Duration.ofSeconds(5),
                Duration.ofSeconds(2), 3, 0, Duration.ofSeconds(1));
        Duration stall = h.engineStall(32, Duration.ofSeconds(10), true);
        assertThatThrownBy(() -> h.engineWedged(stall)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.gateway.health.engine-wedged (PT1M30S) must not be shorter than the engine-stall "
                        + "limit (PT5M20S)");
    }
}
