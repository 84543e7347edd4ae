package io.moemesh.router.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.assertj.core.api.InstanceOfAssertFactories;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/** moemesh.router.discovery.* as Spring binds it into RouterProperties: defaults and every refusal, by name. */
class DiscoverySettingsTest {
    static final String SELECTOR = "app.kubernetes.io/name=moemesh,app.kubernetes.io/component=expert-service";

    static RouterProperties bind(Map<String, String> settings) {
        Map<String, String> all = new HashMap<>(Map.of("moemesh.router.model-dir", "/models/m",
                "moemesh.router.state-dir", "/tmp/state", "moemesh.router.tls.mode", "plaintext"));
        all.putAll(settings);
        return new Binder(new MapConfigurationPropertySource(all)).bind("moemesh.router", RouterProperties.class).get();
    }

    static Map<String, String> kubernetes() {
        return new HashMap<>(Map.of("moemesh.router.discovery.mode", "kubernetes",
                "moemesh.router.discovery.namespace", "moemesh",
                "moemesh.router.discovery.label-selector", SELECTOR,
                "moemesh.router.discovery.config-map", "mesh-moemesh-placement"));
    }

    @Test
    void defaults_areStaticMode_withTheConfiguredInstances() {
        RouterProperties p = bind(Map.of("moemesh.router.instances[0].id", "expert-0",
                "moemesh.router.instances[0].endpoint", "127.0.0.1:9100"));
        assertThat(p.discovery().kubernetes()).isFalse();
        assertThat(p.discovery().grpcPort()).isEqualTo(9100);
        assertThat(p.discovery().settleTime()).isEqualTo(Duration.ofSeconds(2));
        assertThat(p.discovery().resyncPeriod()).isEqualTo(Duration.ofSeconds(30));
    }

    @Test
    void kubernetesMode_needsNoInstances() {
        RouterProperties p = bind(kubernetes());
        assertThat(p.discovery().kubernetes()).isTrue();
        assertThat(p.instances()).isEmpty();
        assertThat(p.discovery().selector().toString()).isEqualTo(
                "app.kubernetes.io/component=expert-service,app.kubernetes.io/name=moemesh");
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', textBlock = """
            moemesh.router.discovery.mode            | consul          | moemesh.router.discovery.mode must be static or kubernetes
            moemesh.router.discovery.namespace       | ' '             | moemesh.router.discovery.namespace is required
            moemesh.router.discovery.namespace       | Bad_NS          | moemesh.router.discovery.namespace must be a DNS label
            moemesh.router.discovery.label-selector  | ' '             | moemesh.router.discovery.label-selector is required
            moemesh.router.discovery.label-selector  | app in (a)      | moemesh.router.discovery.label-selector:
            moemesh.router.discovery.config-map      | ' '             | moemesh.router.discovery.config-map is required
            moemesh.router.discovery.config-map      | Placement!      | moemesh.router.discovery.config-map must be a DNS subdomain
            moemesh.router.discovery.grpc-port       | 0               | moemesh.router.discovery.grpc-port must be in [1, 65535]
            moemesh.router.discovery.grpc-port       | 65536           | moemesh.router.discovery.grpc-port must be in [1, 65535]
            moemesh.router.discovery.settle-time     | -1s             | moemesh.router.discovery.settle-time must be >= 0
            moemesh.router.discovery.resync-period   | 500ms           | moemesh.router.discovery.resync-period must be >= 1s
            moemesh.router.discovery.api-server      | ftp://k8s:1     | moemesh.router.discovery.api-server must be an http(s) URL
            moemesh.router.discovery.lease           | Router!         | moemesh.router.discovery.lease must be a DNS subdomain name, got "Router!"
            moemesh.router.discovery.lease-duration  | 2s              | moemesh.router.discovery.lease-duration must be whole seconds, >= 3s, got PT2S
            moemesh.router.discovery.lease-duration  | 3500ms          | moemesh.router.discovery.lease-duration must be whole seconds, >= 3s, got PT3.5S
            moemesh.router.instances[0].id           | expert-0        | instances and instances-from must be unset with discovery.mode=kubernetes
            moemesh.router.instances-from            | /tmp/p.json     | instances and instances-from must be unset with discovery.mode=kubernetes
            """)
    void kubernetesMode_badSetting_isRefused_namingTheProperty(String key, String value, String message) {
        Map<String, String> s = kubernetes();
        s.put(key, value);
        if (key.startsWith("moemesh.router.instances[0]")) {
            s.put("moemesh.router.instances[0].endpoint", "127.0.0.1:9100");
        }
        assertThatThrownBy(() -> bind(s)).rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message);
    }

    @Test
    void staticMode_withoutInstances_isStillRefused() {
        assertThatThrownBy(() -> bind(Map.of())).rootCause().isInstanceOf(IllegalArgumentException.class)
                .asInstanceOf(InstanceOfAssertFactories.THROWABLE)
                .hasMessageContaining("instances is empty and instances-from is not set");
    }
}
