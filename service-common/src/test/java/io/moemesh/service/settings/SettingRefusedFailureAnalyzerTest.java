package io.moemesh.service.settings;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.BeanCreationException;
import org.springframework.beans.factory.UnsatisfiedDependencyException;
import org.springframework.boot.diagnostics.FailureAnalysis;
import org.springframework.boot.diagnostics.FailureAnalyzer;
import org.springframework.core.io.support.SpringFactoriesLoader;

class SettingRefusedFailureAnalyzerTest {
    private static final String MESSAGE = "moemesh.kvcache.dram-bytes (MOEMESH_KVCACHE_DRAM_BYTES): 1073741824 bytes "
            + "(1024 MiB) of blocks do not fit the JVM's max heap of 268435456 bytes (256 MiB)";

    /** As Spring wraps a bean factory method's exception: several levels of bean creation above the refusal. */
    private static Throwable startFailure(Throwable refusal) {
        BeanCreationException bean = new BeanCreationException("servedModels", "Failed to instantiate", refusal);
        UnsatisfiedDependencyException dependent = new UnsatisfiedDependencyException(null, "grpcServer",
                "Unsatisfied dependency expressed through method 'grpcServer' parameter 1", bean);
        return new IllegalStateException("Unable to start web server", dependent);
    }

    @Test
    void analyze_refusalDeepInTheCauseChain_isTheDescription_andTheSettingWithItsEnvironmentVariableTheAction() {
        SettingRefusedException refusal = new SettingRefusedException("moemesh.kvcache.dram-bytes", MESSAGE);

        FailureAnalysis a = new SettingRefusedFailureAnalyzer().analyze(startFailure(refusal));

        assertThat(a).isNotNull();
        assertThat(a.getDescription()).isEqualTo(MESSAGE);
        assertThat(a.getAction()).isEqualTo("Change moemesh.kvcache.dram-bytes (environment variable "
                + "MOEMESH_KVCACHE_DRAM_BYTES), or what it is checked against, as the description says; then start "
                + "the service again.");
        assertThat(a.getCause()).isSameAs(refusal);
    }

    @Test
    void analyze_refusalThatWrapsWhatItFound_reportsTheRefusalsMessage() {
        SettingRefusedException refusal = new SettingRefusedException("moemesh.expert.native-cache-dir",
                "native library cache /tmp (moemesh.expert.native-cache-dir) is writable by group or others",
                new IllegalStateException("native library cache /tmp is writable by group or others"));

        FailureAnalysis a = new SettingRefusedFailureAnalyzer().analyze(startFailure(refusal));

        assertThat(a.getDescription()).startsWith("native library cache /tmp (moemesh.expert.native-cache-dir)");
        assertThat(a.getAction()).startsWith("Change moemesh.expert.native-cache-dir (environment variable "
                + "MOEMESH_EXPERT_NATIVE_CACHE_DIR)");
    }

    @Test
    void analyze_settingThatIsNoPropertyName_isNamedWithoutAnEnvironmentVariable() {
        FailureAnalysis a = new SettingRefusedFailureAnalyzer().analyze(startFailure(
                new SettingRefusedException("moemesh.router.instances[0].endpoint", "bad endpoint")));

        assertThat(a.getAction()).startsWith("Change moemesh.router.instances[0].endpoint, or what");
    }

    @Test
    void analyze_failureWithoutARefusedSetting_isLeftToSpringBootsOwnAnalyzers() {
        Throwable other = startFailure(new IllegalArgumentException("moemesh.gateway.something went wrong"));

        assertThat(new SettingRefusedFailureAnalyzer().analyze(other)).isNull();
    }

    @Test
    void springFactories_registerTheAnalyzer_whereSpringBootsFailureAnalyzersLoadThem() {
        // Spring Boot's own analyzers need arguments FailureAnalyzers gives them: skipped here.
        assertThat(SpringFactoriesLoader.forDefaultResourceLocation(getClass().getClassLoader())
                .load(FailureAnalyzer.class, null, SpringFactoriesLoader.FailureHandler.handleMessage((m, e) -> { })))
                .hasAtLeastOneElementOfType(SettingRefusedFailureAnalyzer.class);
    }

    @Test
    void refusal_isACallersMistake_andNeedsTheSettingsName() {
        assertThat(new SettingRefusedException("moemesh.router.replicas", "x"))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new SettingRefusedException(" ", "x")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("property's name");
    }
}
