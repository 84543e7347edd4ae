package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.MeshStates;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code moemesh bench kvcache-ttft} before it starts anything: what it refuses to touch. */
class KvTtftBenchCommandTest {

    /**
     * The bench empties {@code <work-dir>/kvcache} for a cold service: with a mesh still running there (its
     * mesh.json records a live process: this test's JVM) that would delete a live store's acknowledged blocks.
     */
    @Test
    void workDirOfARunningMesh_isRefusedWithExitTwo_andItsKvCacheStays(@TempDir Path work) throws Exception {
        Path segment = work.resolve("kvcache").resolve("seg-0000000000000001.kvseg");
        Files.createDirectories(segment.getParent());
        Files.write(segment, new byte[] {1, 2, 3});
        ProcessHandle self = ProcessHandle.current();
        MeshState.Service live = new MeshState.Service("kvcache", self.pid(),
                self.info().startInstant().map(Object::toString).orElse(""), 1, 2, "/dev/null", List.of("java"),
                Map.of());
        MeshStates.write(work, new MeshState("/models/m", 1, 1, "/state/placement.json", List.of(live), null));

        CliRun r = CliRun.of("bench", "kvcache-ttft", "--model", "S", "--work-dir", work.toString());

        assertThat(r.exitCode()).as(r.err()).isEqualTo(2);
        assertThat(r.err().strip()).startsWith("moemesh kvcache-ttft: a mesh is already running in " + work)
                .contains("moemesh down --state-dir " + work);
        assertThat(segment).hasBinaryContent(new byte[] {1, 2, 3});
    }
}
