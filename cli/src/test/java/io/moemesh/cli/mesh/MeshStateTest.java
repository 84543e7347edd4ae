package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** mesh.json as files of other builds, and damaged ones, leave it: read, or refused with a way out. */
class MeshStateTest {
    @TempDir
    Path state;
    private Process sleeper;

    @AfterEach
    void kill() {
        if (sleeper != null) {
            sleeper.destroyForcibly();
        }
    }

    /**
     * A mesh.json written before b6996a3 has no managementPort or restarts (nor supervisor, router, kvcache): Jackson
     * 3 refused the missing ints, so after an upgrade down exited 2 and stopped nothing. The service it records is a
     * live process, known by its start instant only, as that build recorded it.
     */
    @Test
    void meshJsonOfAnEarlierBuild_isRead_andDownStopsTheMeshItRecords() throws IOException {
        sleeper = new ProcessBuilder("sleep", "600").start();
        String startedAt = sleeper.info().startInstant().orElseThrow().toString();
        Files.writeString(MeshState.file(state), """
                {
                  "model" : "/m", "replicas" : 1, "epoch" : 1, "placementFile" : "/p",
                  "experts" : [ { "name" : "expert-0", "pid" : %d, "startedAt" : "%s",
                                  "grpcPort" : 1, "httpPort" : 2, "logFile" : "/l", "command" : [ "java" ],
                                  "environment" : { } } ],
                  "gateway" : null
                }
                """.formatted(sleeper.pid(), startedAt));

        MeshState.Service expert = MeshState.read(state).orElseThrow().experts().getFirst();
        assertThat(expert.managementPort()).isZero();
        assertThat(expert.restarts()).isZero();
        assertThat(expert.bootId()).isNull();
        assertThat(expert.process()).isPresent();

        assertThat(MeshLauncher.down(state, Duration.ofSeconds(5))).containsExactly(
                "stopped expert-0 (pid " + sleeper.pid() + ")");
        await().atMost(Duration.ofSeconds(10)).until(() -> !sleeper.isAlive());
        assertThat(MeshState.file(state)).doesNotExist();
    }

    /** A later build's fields (a downgrade, or a tool that annotates the file) are ignored, not refused. */
    @Test
    void meshJsonWithFieldsOfALaterBuild_isRead() throws IOException {
        Files.writeString(MeshState.file(state), """
                {
                  "model" : "/m", "replicas" : 1, "epoch" : 1, "placementFile" : "/p", "schema" : 9,
                  "experts" : [ { "name" : "expert-0", "pid" : 4000000, "startedAt" : "", "grpcPort" : 1,
                                  "httpPort" : 2, "logFile" : "/l", "command" : [ "java" ], "environment" : { },
                                  "managementPort" : 3, "restarts" : 0, "cgroup" : { "path" : "/x" } } ],
                  "gateway" : null
                }
                """);
        assertThat(MeshState.read(state).orElseThrow().experts().getFirst().managementPort()).isEqualTo(3);
    }

    /**
     * A truncated mesh.json cannot say which processes are the mesh's: down cannot stop them, and said so with no way
     * out. It names the pids it still finds in the text and says to delete the file.
     */
    @Test
    void corruptMeshJson_downNamesThePidsItFinds_andSaysToDeleteTheFile() throws IOException {
        Files.writeString(MeshState.file(state), """
                {
                  "model" : "/m", "replicas" : 1, "epoch" : 1, "placementFile" : "/p",
                  "experts" : [ { "name" : "expert-0", "pid" : 4000001, "startedAt" : "", "grpcPort" : 1 },
                                { "name" : "expert-1", "pid" : 4000002, "sta""");
        assertThatThrownBy(() -> MeshLauncher.down(state, Duration.ZERO))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(MeshState.file(state) + ": not a mesh state file")
                .hasMessageContaining("4000001, 4000002")
                .hasMessageContaining("then delete " + MeshState.file(state));
    }

    /** A write that fails (a full disk: here the rename onto a directory) leaves no mesh.json*.tmp behind. */
    @Test
    void failedWrite_leavesNoTemporaryFile() throws IOException {
        Files.createDirectories(MeshState.file(state).resolve("in-the-way"));
        MeshState s = new MeshState("/m", 1, 1, "/p", List.of(new MeshState.Service("expert-0", 0, "", 1, 2, "/l",
                List.of("java"), Map.of())), null);
        assertThatThrownBy(() -> s.write(state)).isInstanceOf(UncheckedIOException.class)
                .hasMessageContaining("cannot write the mesh state");
        try (Stream<Path> files = Files.list(state)) {
            assertThat(files.map(p -> p.getFileName().toString())).noneMatch(n -> n.endsWith(".tmp"));
        }
    }
}
