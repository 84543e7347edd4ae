package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The official {@code openai} npm client (Node.js) against a started mesh: completions, chat, streaming text
 * equal to the non-streamed text, logprobs, and error cases (e2e/src/test/node/openai-client.mjs).
 */
class OpenAiClientTest {
    private static RunningMesh mesh;

    @BeforeAll
    static void start() {
        mesh = TestMeshes.start("openai-client", TestModels.MIXTRAL, 2, 1);
    }

    @AfterAll
    static void stop() {
        if (mesh != null) {
            mesh.close();
        }
    }

    private static Path nodeDir() {
        return TestModels.repoRoot().resolve("e2e").resolve("src").resolve("test").resolve("node");
    }

    /** Installs the pinned client (package-lock.json) unless .ci/run already did. */
    private static void npmCi() throws IOException, InterruptedException {
        if (Files.isDirectory(nodeDir().resolve("node_modules").resolve("openai"))) {
            return;
        }
        // bounded: a hung npm ci fails the test (its process tree killed) instead of stalling the build
        BoundedRun npm = BoundedRun.of(new ProcessBuilder("npm", "ci", "--no-audit", "--no-fund")
                .directory(nodeDir().toFile()), Duration.ofMinutes(5));
        assertThat(npm.finished()).as("npm ci finished within 5 minutes: %s", npm.output()).isTrue();
        assertThat(npm.exit()).as("npm ci: %s", npm.output()).isZero();
    }

    @Test
    void officialOpenAiClient_completionsChatStreamingAndErrors() throws Exception {
        npmCi();
        String base = mesh.gatewayHttp();
        BoundedRun node = BoundedRun.of(new ProcessBuilder(List.of("node", "openai-client.mjs", base,
                TestModels.MIXTRAL)).directory(nodeDir().toFile()), Duration.ofMinutes(4));
        String out = node.output();
        assertThat(node.finished()).as("node finished within 4 minutes: %s", out).isTrue();
        assertThat(node.exit()).as(out).isZero();
        // every check of the script passed: as many ok lines as the script has checks
        long checks = Files.readAllLines(nodeDir().resolve("openai-client.mjs")).stream()
                .filter(l -> l.startsWith("await check(")).count();
        assertThat(checks).isGreaterThanOrEqualTo(9);
        assertThat(out.lines().filter(l -> l.contains("\"ok\":true"))).hasSize((int) checks);
    }
}
