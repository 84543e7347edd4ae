package io.moemesh.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The launcher script's {@code java_major}, run by bash as the script defines it, on stand-in {@code java}
 * executables that print a version line as the JDK does: every JDK the launcher may pick gives its feature release
 * as a plain number (its check {@code major >= 25} needs one), early-access builds included; and its
 * {@code find_java}, run as the script runs it ({@code set -euo pipefail}).
 */
class LauncherJavaVersionTest {
    @TempDir
    Path tmp;

    @ParameterizedTest(name = "\"{0}\" -> {1}")
    @CsvSource({
        "25,          25",
        "25.0.1,      25",
        "26-ea,       26",
        "25+36,       25",
        "26-internal, 26",
        "1.8.0_392,   8",
    })
    void javaMajor_isTheFeatureReleaseAsANumber_earlyAccessBuildsIncluded(String version, String major)
            throws IOException, InterruptedException {
        Path java = tmp.resolve("java");
        Files.writeString(java, "#!/bin/sh\necho 'openjdk version \"" + version + "\" 2026-03-17' >&2\n"
                + "echo 'OpenJDK Runtime Environment (build " + version + ")' >&2\n");
        java.toFile().setExecutable(true);
        Path script = TestModels.repoRoot().resolve("moemesh");
        Process p = new ProcessBuilder("bash", "-c",
                "eval \"$(sed -n '/^java_major()/,/^}/p' \"$0\")\" && java_major \"$1\"", script.toString(),
                java.toString()).redirectErrorStream(true).start();
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip()).isEqualTo(major);
    }

    /**
     * Under {@code env -i}, a systemd system unit without {@code User=} or some CI runners HOME is unset: the search
     * aborted on {@code "$HOME"} (set -u) and the launcher said no JDK existed, with a valid one in JAVA_HOME or on
     * PATH.
     */
    @ParameterizedTest(name = "the JDK in {0}")
    @ValueSource(strings = {"JAVA_HOME", "PATH"})
    void findJava_withHomeUnset_takesTheJdk(String where) throws IOException, InterruptedException {
        Path jdk = tmp.resolve("jdk-25");
        Path java = jdk.resolve("bin").resolve("java");
        Files.createDirectories(java.getParent());
        Files.writeString(java, "#!/bin/sh\necho 'openjdk version \"25.0.1\" 2025-10-21' >&2\n");
        Files.writeString(jdk.resolve("bin").resolve("javac"), "#!/bin/sh\n");
        java.toFile().setExecutable(true);
        jdk.resolve("bin").resolve("javac").toFile().setExecutable(true);
        Path script = TestModels.repoRoot().resolve("moemesh");
        ProcessBuilder pb = new ProcessBuilder("/bin/bash", "-c", "set -euo pipefail; eval \"$(sed -n "
                + "'/^java_major()/,/^}/p; /^usable_java()/,/^}/p; /^find_java()/,/^}/p' \"$0\")\" && find_java",
                script.toString()).redirectErrorStream(true);
        Map<String, String> env = pb.environment();
        env.clear();
        if (where.equals("JAVA_HOME")) {
            env.put("JAVA_HOME", jdk.toString());
            env.put("PATH", "/usr/bin:/bin");
        } else {
            env.put("PATH", jdk.resolve("bin") + ":/usr/bin:/bin");
        }
        Process p = pb.start();
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertThat(p.exitValue()).as(out).isZero();
        assertThat(out).isEqualTo(java.toString());
    }
}
