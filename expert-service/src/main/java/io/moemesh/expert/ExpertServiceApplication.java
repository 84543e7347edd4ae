package io.moemesh.expert;

import io.moemesh.model.kernel.MatMul;
import java.util.Locale;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.event.ApplicationEnvironmentPreparedEvent;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;
import org.springframework.context.ApplicationEvent;
import org.springframework.context.ApplicationListener;

/** The expert service: batched MoE expert FFNs over gRPC. Everything is wired in {@code config}. */
@SpringBootApplication(proxyBeanMethods = false)
@ConfigurationPropertiesScan
public final class ExpertServiceApplication {

    public static void main(String[] args) {
        SpringApplication app = new SpringApplication(ExpertServiceApplication.class);
        // Cold start: with the cpu backend (the default), the kernel warm-up (seconds of C2 compilation,
        // MatMul.warmUp) runs on another core while Spring builds the context, as soon as the settings are known,
        // and nothing waits for it: the kernels give the same bits in every JIT tier, so the first batches are only
        // slower until it is done (docs/performance.md "Cold start"). The noop backend needs none.
        app.addListeners((ApplicationListener<ApplicationEvent>) e -> {
            if (e instanceof ApplicationEnvironmentPreparedEvent prepared && "cpu".equals(prepared.getEnvironment()
                    .getProperty("moemesh.expert.backend", "cpu").strip().toLowerCase(Locale.ROOT))) {
                MatMul.warmUpInBackground();
            }
        });
        app.run(args);
    }
}
