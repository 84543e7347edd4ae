package io.moemesh.kvcache;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/**
 * The kvcache-service: KV blocks in DRAM over SSD (or CSD) tiers, served over gRPC ({@code kvcache.v1}). Everything
 * is wired in {@code config}.
 */
@SpringBootApplication(proxyBeanMethods = false)
@ConfigurationPropertiesScan
public final class KvCacheServiceApplication {

    public static void main(String[] args) {
        SpringApplication.run(KvCacheServiceApplication.class, args);
    }
}
