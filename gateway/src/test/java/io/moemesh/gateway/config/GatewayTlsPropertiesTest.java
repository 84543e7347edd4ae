package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.service.tls.TlsSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.ConfigurationPropertySources;
import org.springframework.core.env.StandardEnvironment;
import org.springframework.core.env.SystemEnvironmentPropertySource;

/** moemesh.gateway.tls.* as Spring binds it from the environment, the way `moemesh up` and Kubernetes set it. */
class GatewayTlsPropertiesTest {
    @TempDir
    Path tmp;

    private static GatewayProperties bind(Map<String, Object> env) {
        Map<String, Object> all = new HashMap<>(env);
        all.put("MOEMESH_GATEWAY_MODEL_DIR", "/models/m");
        Binder binder = new Binder(ConfigurationPropertySources.from(new SystemEnvironmentPropertySource(
                StandardEnvironment.SYSTEM_ENVIRONMENT_PROPERTY_SOURCE_NAME, all)));
        return binder.bindOrCreate("moemesh.gateway", GatewayProperties.class);
    }

    @Test
    void withoutAPlacement_noChannelsToExperts_noCertificatesNeeded() {
        assertThat(bind(Map.of()).tls().mode()).isEqualTo(TlsSettings.Mode.MTLS);
    }

    @Test
    void withAPlacement_mtlsIsTheDefault_andStartupFailsNamingTheMissingFilesAndThePlaintextSetting() {
        assertThatThrownBy(() -> bind(Map.of("MOEMESH_GATEWAY_PLACEMENT_FILE", "/state/placement.json"))).rootCause()
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("moemesh.gateway.tls.mode is mtls (the default), but moemesh.gateway.tls.cert-chain "
                        + "(MOEMESH_GATEWAY_TLS_CERT_CHAIN), moemesh.gateway.tls.private-key (MOEMESH_GATEWAY_TLS_PRIVATE_KEY), "
                        + "moemesh.gateway.tls.ca-bundle (MOEMESH_GATEWAY_TLS_CA_BUNDLE) are not set")
                .hasMessageEndingWith("To run without TLS, set moemesh.gateway.tls.mode=plaintext "
                        + "(MOEMESH_GATEWAY_TLS_MODE=plaintext) explicitly.");
    }

    @Test
    void withAPlacement_theFilesFromTheEnvironment_areBound() throws IOException {
        Path cert = Files.writeString(tmp.resolve("gateway.crt"), "");
        Path key = Files.writeString(tmp.resolve("gateway.key"), "");
        Path ca = Files.writeString(tmp.resolve("ca.crt"), "");
        GatewayProperties p = bind(Map.of("MOEMESH_GATEWAY_PLACEMENT_FILE", "/state/placement.json",
                "MOEMESH_GATEWAY_TLS_CERT_CHAIN", cert.toString(), "MOEMESH_GATEWAY_TLS_PRIVATE_KEY", key.toString(),
                "MOEMESH_GATEWAY_TLS_CA_BUNDLE", ca.toString(), "MOEMESH_GATEWAY_TLS_RELOAD_PERIOD", "5m"));
        assertThat(p.tls()).isEqualTo(new TlsSettings(TlsSettings.Mode.MTLS, cert, key, ca, Duration.ofMinutes(5)));
    }

    @Test
    void plaintext_onlyWhenSetExplicitly() {
        GatewayProperties p = bind(Map.of("MOEMESH_GATEWAY_PLACEMENT_FILE", "/state/placement.json",
                "MOEMESH_GATEWAY_TLS_MODE", "plaintext"));
        assertThat(p.tls().isMtls()).isFalse();
    }
}
