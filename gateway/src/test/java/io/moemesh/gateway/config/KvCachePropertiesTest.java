package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.gateway.kvcache.RemotePrefixes;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.service.settings.SettingRefusedException;
import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.ConfigurationPropertySources;
import org.springframework.core.env.StandardEnvironment;
import org.springframework.core.env.SystemEnvironmentPropertySource;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** moemesh.gateway.kvcache.*: defaults, the environment's names, and every bad value refused naming its property. */
class KvCachePropertiesTest {

    private static GatewayProperties bind(Map<String, Object> env) {
        Map<String, Object> all = new HashMap<>(env);
        all.put("MOEMESH_GATEWAY_MODEL_DIR", "/models/m");
        all.put("MOEMESH_GATEWAY_TLS_MODE", "plaintext");
        Binder binder = new Binder(ConfigurationPropertySources.from(new SystemEnvironmentPropertySource(
                StandardEnvironment.SYSTEM_ENVIRONMENT_PROPERTY_SOURCE_NAME, all)));
        return binder.bindOrCreate("moemesh.gateway", GatewayProperties.class);
    }

    @Test
    void theEnvironmentsNames_areBound() {
        KvCacheProperties k = bind(Map.of("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", "10.0.0.7:9500",
                "MOEMESH_GATEWAY_KVCACHE_FETCHTIMEOUT", "750ms", "MOEMESH_GATEWAY_KVCACHE_PREEMPTION", "swap",
                "MOEMESH_GATEWAY_KVCACHE_WRITEBACKQUEUEBLOCKS", "8")).kvcache();
        assertThat(k.enabled()).isTrue();
        assertThat(k.endpoint()).isEqualTo("10.0.0.7:9500");
        assertThat(k.fetchTimeout()).isEqualTo(Duration.ofMillis(750));
        assertThat(k.mode()).isEqualTo(RemotePrefixes.Mode.SWAP);
        assertThat(k.writeBackQueueBlocks()).isEqualTo(8);
    }

    @Test
    void aDomainSocketEndpoint_isAccepted() {
        KvCacheProperties k = new KvCacheProperties("unix:///run/moemesh/kvcache.sock", null, 1, 1, null, 1, 1, "auto",
                null, null, null);
        assertThat(k.enabled()).isTrue();
        assertThat(k.endpoint()).isEqualTo("unix:///run/moemesh/kvcache.sock");
    }

    @Test
    void anEndpoint_withPrefixCachingOff_isRefused_namingBoth() {
        assertThatThrownBy(() -> bind(Map.of("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", "h:1",
                "MOEMESH_GATEWAY_PREFIXCACHING_ENABLED", "false"))).rootCause()
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.kvcache.endpoint")
                .hasMessageContaining("moemesh.gateway.prefix-caching.enabled=true");
    }

    @Test
    void anEndpoint_needsTheMeshCertificate_evenWithoutExpertServices() {
        Map<String, Object> env = new HashMap<>();
        env.put("MOEMESH_GATEWAY_MODEL_DIR", "/models/m");
        env.put("MOEMESH_GATEWAY_KVCACHE_ENDPOINT", "h:1");
        Binder binder = new Binder(ConfigurationPropertySources.from(new SystemEnvironmentPropertySource(
                StandardEnvironment.SYSTEM_ENVIRONMENT_PROPERTY_SOURCE_NAME, env)));
        assertThatThrownBy(() -> binder.bindOrCreate("moemesh.gateway", GatewayProperties.class)).rootCause()
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("moemesh.gateway.tls.cert-chain");
    }

    @Test
    void defaults_areOff_withDocumentedValues() {
        KvCacheProperties k = KvCacheProperties.off();
        assertThat(k.enabled()).isFalse();
        assertThat(k.fetchTimeout()).isEqualTo(Duration.ofSeconds(2));
        assertThat(k.mode()).isEqualTo(RemotePrefixes.Mode.AUTO);
        assertThat(k.attend()).isEqualTo(new KvCacheProperties.Attend(false, 4096, 32, Duration.ofSeconds(2),
                Duration.ofSeconds(10)));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "attend.threshold-tokens | 0 | 1  | 1000",
        "attend.local-blocks     | 1 | -1 | 1000",
        "attend.timeout          | 1 | 1  | 0"})
    void aBadAttendValue_isRefused_namingItsProperty(String property, int threshold, int local, long timeoutMillis) {
        assertThatThrownBy(() -> new KvCacheProperties.Attend(true, threshold, local, Duration.ofMillis(timeoutMillis),
                null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.kvcache." + property);
    }

    @Test
    void attend_thatNoSequenceInThePoolEverReaches_isRefused_namingThePropertiesAndThePool() {
        assertThat(new KvCacheProperties.Attend(true, 129, 0, null, null).neverOffloadsIn(8, 16))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.gateway.kvcache.attend.threshold-tokens"))
                .hasMessageContaining("moemesh.gateway.kvcache.attend.threshold-tokens 129")
                .hasMessageContaining("moemesh.gateway.kvcache.attend.local-blocks 0")
                .hasMessageContaining("8 blocks of 16 tokens (128 positions")
                .hasMessageContaining("threshold-tokens must be at most 128 and local-blocks at most 7");
    }

    @Test
    void attend_whoseRemotePrefixCouldPassTheHashesOfOneAttend_isRefused_namingKvBlockTokensAndWhatFits() {
        KvCacheProperties.Attend a = new KvCacheProperties.Attend(true, 4096, 32, null, null);

        // 1-token blocks at a 131,072-position context: the last Attend's prefix comes from 131,070 positions,
        // 131,038 remote blocks, one hash each.
        assertThatThrownBy(() -> a.checkRemotePrefix(131_072, 0, 0, 1, 65_536))
                .isInstanceOfSatisfying(SettingRefusedException.class,
                        e -> assertThat(e.setting()).isEqualTo("moemesh.gateway.kv-block-tokens"))
                .hasMessageContaining("moemesh.gateway.kv-block-tokens 1 ")
                .hasMessageContaining("the longest sequence, 131072 tokens")
                .hasMessageContaining("131038 remote blocks")
                .hasMessageContaining("moemesh.gateway.kvcache.attend.local-blocks 32")
                .hasMessageContaining("65536 block hashes")
                .hasMessageContaining("at least 2");
        a.checkRemotePrefix(131_072, 0, 0, 2, 65_536);
        // A sequence of N tokens has at most N - 1 positions of KV, and its last Attend a remote prefix from N - 2:
        // 65,570 tokens give 65,536 remote blocks past the 32 local ones, which fit; one more token does not.
        a.checkRemotePrefix(65_570, 0, 0, 1, 65_536);
        assertThatThrownBy(() -> a.checkRemotePrefix(65_571, 0, 0, 1, 65_536)).hasMessageContaining("65537 remote blocks");
        // A context below threshold-tokens never offloads.
        new KvCacheProperties.Attend(true, 200_000, 0, null, null).checkRemotePrefix(131_072, 0, 0, 1, 65_536);
    }

    @Test
    void attend_remotePrefixCheck_countsTheAdmissionCaps_notOnlyTheContext() {
        KvCacheProperties.Attend a = new KvCacheProperties.Attend(true, 4096, 32, null, null);
        // Prompts of at most 60,000 tokens and 5,570 new ones: no sequence passes 65,570 tokens, whatever the context.
        a.checkRemotePrefix(131_072, 60_000, 5_570, 1, 65_536);
        assertThatThrownBy(() -> a.checkRemotePrefix(131_072, 60_000, 5_571, 1, 65_536))
                .hasMessageContaining("the longest sequence, 65571 tokens").hasMessageContaining("65537 remote blocks");
    }

    @Test
    void attend_withoutAnEndpoint_isRefused_namingBoth() {
        assertThatThrownBy(() -> new KvCacheProperties("", null, 1, 1, null, 1, 1, "auto", null,
                new KvCacheProperties.Attend(true, 64, 2, null, null), null))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.kvcache.attend.enabled")
                .hasMessageContaining("moemesh.gateway.kvcache.endpoint");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "endpoint          | nohost   | 1   | 1 | 1 | 1 | auto",
        "endpoint          | unix://relative.sock | 1 | 1 | 1 | 1 | auto",
        "fetch-timeout     | h:1      | 0   | 1 | 1 | 1 | auto",
        "min-fetch-blocks  | h:1      | 1   | 0 | 1 | 1 | auto",
        "write-back-queue-blocks | h:1 | 1 | 1 | 0 | 1 | auto",
        "fetch-threads     | h:1      | 1   | 1 | 1 | 0 | auto",
        "preemption        | h:1      | 1   | 1 | 1 | 1 | sometimes"})
    void aBadValue_isRefused_namingItsProperty(String property, String endpoint, int fetchSeconds, int minBlocks,
                                               int queue, int threads, String preemption) {
        assertThatThrownBy(() -> new KvCacheProperties(endpoint, Duration.ofSeconds(fetchSeconds), minBlocks, queue,
                null, 10, threads, preemption, null, null, null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.kvcache." + property);
    }

    @ParameterizedTest(name = "{0} {1} {2} -> {3}")
    @CsvSource(delimiter = '|', value = {
        "auto | unix:///run/k.sock | PEER_UID | true",
        "AUTO | unix:///run/k.sock | PEER_UID | true",
        "auto | unix:///run/k.sock | TLS      | false",
        "auto | h:1                | PEER_UID | false",
        "off  | unix:///run/k.sock | PEER_UID | false"})
    void localRead_isOn_onlyForAutoWithAPeerUidDomainSocketEndpoint(String localRead, String endpoint,
                                                                     UnixSocketSecurity security, boolean on) {
        assertThat(new KvCacheProperties(endpoint, null, 1, 1, null, 1, 1, "auto", null, null, localRead)
                .localReads(security)).isEqualTo(on);
    }

    @Test
    void localRead_default_isAuto_andAnotherValue_isRefused_namingTheProperty() {
        assertThat(KvCacheProperties.off().localRead()).isEqualTo("auto");
        assertThatThrownBy(() -> new KvCacheProperties("h:1", null, 1, 1, null, 1, 1, "auto", null, null, "on"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.kvcache.local-read must be auto or off");
    }

    @ParameterizedTest
    @CsvSource({"auto, AUTO", "RECOMPUTE, RECOMPUTE", " swap , SWAP"})
    void preemption_namesAMode(String value, RemotePrefixes.Mode mode) {
        assertThat(new KvCacheProperties("h:1", null, 1, 1, null, 1, 1, value, null, null, null).mode()).isEqualTo(mode);
    }
}
