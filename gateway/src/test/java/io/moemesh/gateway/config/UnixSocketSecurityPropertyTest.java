package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.service.grpc.UnixSocketSecurity;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/** moemesh.gateway.unix-socket-security, bound as Spring binds it: how unix:/// endpoints are reached. */
class UnixSocketSecurityPropertyTest {

    private static GatewayProperties bind(Map<String, String> properties) {
        Map<String, String> all = new HashMap<>(properties);
        all.put("moemesh.gateway.model-dir", "/models/m");
        return new Binder(new MapConfigurationPropertySource(all)).bindOrCreate("moemesh.gateway",
                GatewayProperties.class);
    }

    @Test
    void peerUid_byDefault_tlsWhenSet() {
        assertThat(bind(Map.of()).unixSocketSecurity()).isEqualTo(UnixSocketSecurity.PEER_UID);
        assertThat(bind(Map.of("moemesh.gateway.unix-socket-security", "tls")).unixSocketSecurity())
                .isEqualTo(UnixSocketSecurity.TLS);
        assertThat(bind(Map.of("moemesh.gateway.unix-socket-security", "peer-uid")).unixSocketSecurity())
                .isEqualTo(UnixSocketSecurity.PEER_UID);
    }

    @Test
    void unknownValue_refusedAtStartup_namingTheProperty() {
        assertThatThrownBy(() -> bind(Map.of("moemesh.gateway.unix-socket-security", "none")))
                .isInstanceOf(BindException.class).hasMessageContaining("moemesh.gateway.unix-socket-security");
    }
}
