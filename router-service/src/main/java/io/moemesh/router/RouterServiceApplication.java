package io.moemesh.router;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** The router-service: route reports, path prediction and placement over gRPC. Everything is wired in {@code config}. */
@SpringBootApplication(proxyBeanMethods = false)
@ConfigurationPropertiesScan
public final class RouterServiceApplication {

    public static void main(String[] args) {
        SpringApplication.run(RouterServiceApplication.class, args);
    }
}
