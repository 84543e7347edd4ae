package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/** moemesh.gateway.router.*, bound as Spring binds it: defaults, and every bad value refused naming its property. */
class RouterPropertiesTest {

    private static RouterProperties bind(Map<String, String> properties) {
        return new Binder(new MapConfigurationPropertySource(properties))
                .bindOrCreate("moemesh.gateway.router", RouterProperties.class);
    }

    @Test
    void defaults_noRouter_tenthOfTokens_halfSecondFlush() {
        RouterProperties r = bind(Map.of());
        assertThat(r.enabled()).isFalse();
        assertThat(r.endpoint()).isEmpty();
        assertThat(r.watcherId()).isNotBlank();
        assertThat(r.report().sampleRate()).isEqualTo(0.1);
        assertThat(r.report().flushInterval()).isEqualTo(Duration.ofMillis(500));
        assertThat(r.report().maxQueuedTokens()).isEqualTo(65536);
        assertThat(r.reconnect().initialBackoff()).isEqualTo(Duration.ofMillis(200));
        assertThat(r.reconnect().maxBackoff()).isEqualTo(Duration.ofSeconds(10));
    }

    @Test
    void endpointAndWatcherId_asGiven() {
        RouterProperties r = bind(Map.of("moemesh.gateway.router.endpoint", "router.moemesh:7200",
                "moemesh.gateway.router.watcher-id", "gateway-7f9c"));
        assertThat(r.enabled()).isTrue();
        assertThat(r.endpoint()).isEqualTo("router.moemesh:7200");
        assertThat(r.watcherId()).isEqualTo("gateway-7f9c");
        // 256 bytes in UTF-8 (128 two-byte characters) is the router's limit, and accepted.
        assertThat(bind(Map.of("moemesh.gateway.router.watcher-id", "é".repeat(128))).watcherId()).hasSize(128);
        assertThat(bind(Map.of("moemesh.gateway.router.endpoint", "[::1]:7200")).endpoint()).isEqualTo("[::1]:7200");
    }

    @Test
    void watcherId_defaultsToHostnameVariable_elseTheHostName() {
        assertThat(RouterProperties.defaultWatcherId(Map.of("HOSTNAME", "gateway-5d8f-abcde"), () -> "host"))
                .isEqualTo("gateway-5d8f-abcde");
        assertThat(RouterProperties.defaultWatcherId(Map.of(), () -> "host-a")).isEqualTo("host-a");
        assertThat(RouterProperties.defaultWatcherId(Map.of("HOSTNAME", " "), () -> null)).isEmpty();
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', value = {
            "endpoint | router | moemesh.gateway.router.endpoint must be host:port with a port in [1, 65535] ([address]:port for IPv6), got 'router'",
            "endpoint | router:0 | moemesh.gateway.router.endpoint must be host:port with a port in [1, 65535] ([address]:port for IPv6), got 'router:0'",
            "endpoint | :7200 | moemesh.gateway.router.endpoint must be host:port with a port in [1, 65535] ([address]:port for IPv6), got ':7200'",
            "endpoint | ::1:7200 | moemesh.gateway.router.endpoint must be host:port with a port in [1, 65535] ([address]:port for IPv6), got '::1:7200'",
            "endpoint | router:http | moemesh.gateway.router.endpoint must be host:port with a port in [1, 65535] ([address]:port for IPv6), got 'router:http'",
            "report.sample-rate | 0 | moemesh.gateway.router.report.sample-rate must be in (0, 1], got 0.0",
            "report.sample-rate | 1.5 | moemesh.gateway.router.report.sample-rate must be in (0, 1], got 1.5",
            "report.sample-rate | NaN | moemesh.gateway.router.report.sample-rate must be in (0, 1], got NaN",
            "report.flush-interval | 0s | moemesh.gateway.router.report.flush-interval must be in (0, 1s] (the router needs a report at least once a second), got PT0S",
            "report.flush-interval | 2s | moemesh.gateway.router.report.flush-interval must be in (0, 1s] (the router needs a report at least once a second), got PT2S",
            "report.max-queued-tokens | 0 | moemesh.gateway.router.report.max-queued-tokens must be >= 1, got 0",
            "watcher-id | ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé | moemesh.gateway.router.watcher-id must be at most 256 bytes in UTF-8 (the router refuses longer ids), got 258 bytes",
            "reconnect.initial-backoff | 0ms | moemesh.gateway.router.reconnect.initial-backoff must be a positive duration, got PT0S",
            "reconnect.max-backoff | 100ms | moemesh.gateway.router.reconnect.max-backoff must not be shorter than moemesh.gateway.router.reconnect.initial-backoff (PT0.2S), got PT0.1S",
    })
    void badValue_refusedAtStartup_namingTheProperty(String property, String value, String message) {
        Map<String, String> p = new HashMap<>();
        p.put("moemesh.gateway.router." + property, value);
        assertThatThrownBy(() -> bind(p)).isInstanceOf(BindException.class).rootCause()
                .isInstanceOf(IllegalArgumentException.class).hasMessage(message);
    }

    @Test
    void routerWithoutCertificates_refusedAtStartup_namingTheTlsProperties() {
        Map<String, String> p = Map.of("moemesh.gateway.model-dir", "/models/m",
                "moemesh.gateway.router.endpoint", "router:7200");
        assertThatThrownBy(() -> new Binder(new MapConfigurationPropertySource(p))
                .bindOrCreate("moemesh.gateway", GatewayProperties.class)).isInstanceOf(BindException.class)
                .rootCause().isInstanceOf(IllegalArgumentException.class).hasMessageContaining("moemesh.gateway.tls");
        assertThat(new Binder(new MapConfigurationPropertySource(Map.of("moemesh.gateway.model-dir", "/models/m",
                "moemesh.gateway.router.endpoint", "router:7200", "moemesh.gateway.tls.mode", "plaintext")))
                .bindOrCreate("moemesh.gateway", GatewayProperties.class).expertServices()).isTrue();
    }
}
