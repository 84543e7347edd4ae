package io.moemesh.expert;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** The expert service: batched MoE expert FFNs over gRPC. Everything is wired in {@code config}. */
@SpringBootApplication(proxyBeanMethods = false)
@ConfigurationPropertiesScan
public final class ExpertServiceApplication {

    public static void main(String[] args) {
        SpringApplication.run(ExpertServiceApplication.class, args);
    }
}
