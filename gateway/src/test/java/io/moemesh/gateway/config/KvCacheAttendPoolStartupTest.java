package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.gateway.GatewayApplication;
import io.moemesh.model.golden.TestModels;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;

/**
 * Attend offload over a KV pool in which no sequence would ever offload (the default threshold of 4096 positions
 * against a pool of 128): the gateway refuses to start, naming the properties and the pool, instead of lifting the
 * cache's length bound for offloads that never happen (a long prompt would fill the pool and hold it for ever).
 */
class KvCacheAttendPoolStartupTest {

    @Test
    void attendThatCanNeverOffloadInThePool_isRefusedAtStartup_namingThePropertiesAndThePool() {
        assertThatThrownBy(() -> SpringApplication.run(GatewayApplication.class,
                "--moemesh.gateway.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=128",
                "--moemesh.gateway.tls.mode=plaintext", "--moemesh.gateway.kvcache.endpoint=127.0.0.1:1",
                "--moemesh.gateway.kvcache.attend.enabled=true"))
                .rootCause().isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("moemesh.gateway.kvcache.attend.threshold-tokens 4096")
                .hasMessageContaining("moemesh.gateway.kvcache.attend.local-blocks 32")
                .hasMessageContaining("8 blocks of 16 tokens (128 positions");
    }
}
