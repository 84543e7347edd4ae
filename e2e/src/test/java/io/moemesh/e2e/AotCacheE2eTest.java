package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.mesh.AotCache;
import io.moemesh.cli.mesh.MeshHome;
import io.moemesh.cli.mesh.MeshLauncher;
import io.moemesh.cli.mesh.MeshSpec;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.cli.mesh.ServiceProcess;
import io.moemesh.model.golden.TestModels;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The launcher's AOT cache never stops a start: an archive the JVM cannot map (garbage where app.aot should be, as a
 * disk error or an interrupted copy would leave) costs only a warning in the service's log, and the mesh comes up
 * from the extracted jars. No training run: the test lays out the cache folders itself.
 */
class AotCacheE2eTest {

    @Test
    void up_servesFromExtractedJars_whenTheArchivesAreCorrupt() throws Exception {
        MeshHome home = new MeshHome(TestModels.repoRoot());
        Path root = TestMeshes.stateDir("aot-corrupt").resolve("aot-cache");
        Map<String, String> env = new HashMap<>(System.getenv());
        env.put(AotCache.ENV, root.toString());
        AotCache cache = AotCache.of(home, env).orElseThrow();
        for (Path jar : List.of(home.gatewayJar(), home.expertJar())) {
            Path folder = cache.folder(jar);
            if (!Files.isDirectory(folder.resolve("extracted"))) {
                Process p = new ProcessBuilder(MeshHome.javaBinary(), "-Djarmode=tools", "-jar", jar.toString(),
                        "extract", "--destination", folder.resolve("extracted").toString()).inheritIO().start();
                assertThat(p.waitFor(2, TimeUnit.MINUTES)).isTrue();
                assertThat(p.exitValue()).isZero();
            }
            Files.write(folder.resolve("app.aot"), new byte[] {0x13, 0x37, 0, 0, 1, 2, 3, 4});
        }
        MeshSpec spec = new MeshSpec(TestModels.dir("mixtral-tiny"), 1, 1, TestMeshes.stateDir("aot-corrupt"),
                TestMeshes.HEAP, TestMeshes.START_TIMEOUT, home, List.of()).withoutRouter();
        MeshLauncher.down(spec.stateDir(), Duration.ofSeconds(10));

        try (RunningMesh mesh = MeshLauncher.up(spec, new PrintWriter(System.err, true), true, env)) {
            assertThat(ServiceProcess.serving("127.0.0.1", Integer.parseInt(mesh.gatewayEndpoint().split(":")[1])))
                    .isTrue();
            assertThat(mesh.state().gateway().command()).contains("-XX:AOTCache=" + cache.folder(home.gatewayJar())
                    .resolve("app.aot"));
            assertThat(Files.readString(Path.of(mesh.state().gateway().logFile()))).contains("[aot]");
        }
    }
}
