package io.moemesh.expert.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.springframework.boot.context.properties.bind.BindException;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.MapConfigurationPropertySource;

/** moemesh.expert.* bound as Spring binds them: the kernel threads, and settings refused naming the property. */
class ExpertPropertiesTest {

    private static ExpertProperties bind(Map<String, String> properties) {
        Map<String, String> all = new HashMap<>(properties);
        all.put("moemesh.expert.model-dir", "/models/m");
        all.put("moemesh.expert.tls.mode", "plaintext");
        return new Binder(new MapConfigurationPropertySource(all)).bindOrCreate("moemesh.expert", ExpertProperties.class);
    }

    @Test
    void defaults_everyCoreForEveryBatch() {
        ExpertProperties p = bind(Map.of());
        assertThat(p.smallBatchKernelThreads()).isZero();
        assertThat(p.largeBatchKernelThreads()).isZero();
    }

    @Test
    void bothBound_independently() {
        ExpertProperties p = bind(Map.of("moemesh.expert.small-batch-kernel-threads", "1",
                "moemesh.expert.large-batch-kernel-threads", "3"));
        assertThat(p.smallBatchKernelThreads()).isEqualTo(1);
        assertThat(p.largeBatchKernelThreads()).isEqualTo(3);
    }

    @ParameterizedTest(name = "{0}=-1")
    @CsvSource({"small-batch-kernel-threads", "large-batch-kernel-threads"})
    void belowZero_refusedAtStartup_namingTheProperty(String property) {
        assertThatThrownBy(() -> bind(Map.of("moemesh.expert." + property, "-1")))
                .isInstanceOf(BindException.class).rootCause()
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("moemesh.expert." + property + " must be >= 0 (0 = every core), got -1");
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', textBlock = """
            max-inbound-message-bytes | 1      | moemesh.expert.max-inbound-message-bytes must be >= 65536, got 1
            max-inbound-message-bytes | 65535  | moemesh.expert.max-inbound-message-bytes must be >= 65536, got 65535
            shutdown-grace            | -1s    | moemesh.expert.shutdown-grace must be >= 0, got PT-1S
            drain-grace               | -1s    | moemesh.expert.drain-grace must be >= 0, got PT-1S
            backend                   | gpu    | moemesh.expert.backend must be one of cpu, noop, got "gpu"
            """)
    void settingThatCannotWork_refusedAtStartup_namingThePropertyAndTheValue(String property, String value,
                                                                              String message) {
        assertThatThrownBy(() -> bind(Map.of("moemesh.expert." + property, value)))
                .isInstanceOf(BindException.class).rootCause()
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(message);
    }

    @ParameterizedTest(name = "{0}={1}")
    @CsvSource(delimiter = '|', textBlock = """
            max-inbound-message-bytes | 65536
            shutdown-grace            | 0s
            backend                   | ' NoOp '
            """)
    void boundaryValues_areAccepted(String property, String value) {
        assertThat(bind(Map.of("moemesh.expert." + property, value))).isNotNull();
    }
}
