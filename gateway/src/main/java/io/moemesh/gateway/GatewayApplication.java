package io.moemesh.gateway;

import io.moemesh.model.kernel.MatMul;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

@SpringBootApplication
@ConfigurationPropertiesScan
public class GatewayApplication {
    public static void main(String[] args) {
        // Cold start: the kernel warm-up (seconds of C2 compilation, MatMul.warmUp) runs on another core while
        // Spring builds the context, and nothing waits for it: the kernels give the same bits in every JIT tier, so
        // the first requests are only slower until it is done (docs/performance.md "Cold start").
        MatMul.warmUpInBackground();
        SpringApplication.run(GatewayApplication.class, args);
    }
}
