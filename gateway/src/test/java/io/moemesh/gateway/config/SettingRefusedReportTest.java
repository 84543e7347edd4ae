package io.moemesh.gateway.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.gateway.GatewayApplication;
import io.moemesh.model.golden.TestModels;
import io.moemesh.service.settings.SettingRefusedException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;

/**
 * A setting a bean refuses at startup (here the KV cache against the heap, gateway-configuration.md: "a configured
 * size above 80% of the heap is refused at startup naming what it needs") ends the start with Spring Boot's failure
 * report, the refusal as its description, as a setting the settings record refuses does: not with "Application run
 * failed" and 150 lines of bean creation exceptions, the refusal in the last "Caused by", which is what
 * {@code kubectl logs} and {@code moemesh up} showed of it.
 */
@ExtendWith(OutputCaptureExtension.class)
class SettingRefusedReportTest {
    @Test
    void kvCacheTokensAboveTheHeap_endsTheStartWithTheFailureReport_namingTheSetting_withoutAStackTrace(
            CapturedOutput output) {
        assertThatThrownBy(() -> SpringApplication.run(GatewayApplication.class,
                "--moemesh.gateway.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=100000000"))
                .rootCause().isInstanceOf(SettingRefusedException.class);

        assertThat(output.getAll()).contains("APPLICATION FAILED TO START")
                .containsPattern("Description:\\s+moemesh\\.gateway\\.kv-cache-tokens=100000000 needs [0-9.]+ GiB of "
                        + "heap for its KV cache")
                .containsPattern("Action:\\s+Change moemesh\\.gateway\\.kv-cache-tokens \\(environment variable "
                        + "MOEMESH_GATEWAY_KV_CACHE_TOKENS\\)")
                .doesNotContain("Application run failed").doesNotContain("Caused by:");
        assertThat(output.getAll().lines().filter(line -> line.startsWith("\tat "))).as("stack frames").isEmpty();
    }
}
