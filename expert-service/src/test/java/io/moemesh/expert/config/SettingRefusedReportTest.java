package io.moemesh.expert.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.expert.ExpertServiceApplication;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.kernel.NativeCacheDirectory;
import io.moemesh.service.settings.SettingRefusedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.test.system.CapturedOutput;
import org.springframework.boot.test.system.OutputCaptureExtension;

/**
 * A setting a bean refuses at startup (here native-cache-dir, which the README says "stops the startup" when others
 * could write it) ends the start with Spring Boot's failure report, the refusal as its description: not with
 * "Application run failed" and 60 lines of bean creation exceptions, the refusal in the last "Caused by".
 */
@ExtendWith(OutputCaptureExtension.class)
class SettingRefusedReportTest {
    @TempDir
    Path dir;

    @Test
    void nativeCacheDirOthersCouldWrite_endsTheStartWithTheFailureReport_namingTheSetting_withoutAStackTrace(
            CapturedOutput output) throws Exception {
        Path shared = Files.createDirectory(dir.resolve("shared"));
        Files.setPosixFilePermissions(shared, PosixFilePermissions.fromString("rwxrwxrwx"));
        // The build gives every test JVM -Dorg.bytedeco.javacpp.cachedir, which wins over the setting unchecked.
        String given = System.clearProperty(NativeCacheDirectory.JAVACPP_PROPERTY);
        try {
            assertThatThrownBy(() -> new SpringApplicationBuilder(ExpertServiceApplication.class).run(
                    "--moemesh.expert.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.expert.grpc-port=0",
                    "--server.port=0", "--moemesh.expert.instance-id=expert-3", "--moemesh.expert.tls.mode=plaintext",
                    "--moemesh.expert.native-cache-dir=" + shared).close())
                    .hasRootCauseInstanceOf(IllegalStateException.class)
                    .cause().hasCauseInstanceOf(SettingRefusedException.class);
        } finally {
            if (given != null) {
                System.setProperty(NativeCacheDirectory.JAVACPP_PROPERTY, given);
            }
        }

        assertThat(output.getAll()).contains("APPLICATION FAILED TO START")
                .containsPattern("Description:\\s+native library cache " + shared + " \\(moemesh\\.expert\\.native-"
                        + "cache-dir\\) is writable by group or others \\(rwxrwxrwx\\); chmod go-w it")
                .containsPattern("Action:\\s+Change moemesh\\.expert\\.native-cache-dir \\(environment variable "
                        + "MOEMESH_EXPERT_NATIVE_CACHE_DIR\\)")
                .doesNotContain("Application run failed").doesNotContain("Caused by:");
        assertThat(output.getAll().lines().filter(line -> line.startsWith("\tat "))).as("stack frames").isEmpty();
    }
}
