package io.moemesh.gateway;

import io.moemesh.model.kernel.MatMul;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

@SpringBootApplication
@ConfigurationPropertiesScan
public class GatewayApplication {
    public static void main(String[] args) {
        // Cold start: the kernel warm-up (seconds of C2 compilation, MatMul.warmUp) runs on a second core while
        // Spring builds the context; the engine-loop bean waits for it to finish (docs/performance.md "Cold start").
        Thread.ofPlatform().daemon().name("kernel-warm-up").start(MatMul::warmUp);
        SpringApplication.run(GatewayApplication.class, args);
    }
}
