package io.moemesh.gateway.kvcache;

import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.model.golden.TestModels;
import java.util.function.Supplier;
import org.springframework.test.context.DynamicPropertyRegistry;

/**
 * The settings every HTTP test of the gateway against a kvcache-service shares: the tiny model, gRPC and actuator on
 * free ports, a KV cache of {@code kvCacheTokens} tokens, the service's endpoint, and the test certificates. Each test
 * adds what it is about (fetch timeout, preemption, Attend) after these.
 */
final class KvCacheGatewayProperties {
    private KvCacheGatewayProperties() {
    }

    static void add(DynamicPropertyRegistry r, String model, int kvCacheTokens, Supplier<Object> endpoint) {
        r.add("moemesh.gateway.model-dir", () -> TestModels.dir(model).toString());
        r.add("moemesh.gateway.grpc-port", () -> "0");
        r.add("management.server.port", () -> "0");
        r.add("moemesh.gateway.kv-cache-tokens", () -> Integer.toString(kvCacheTokens));
        r.add("moemesh.gateway.kvcache.endpoint", endpoint);
        TestCertificates.gatewayTls(r);
    }
}
