package io.moemesh.router.reports;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AtomicFilesTest {
    @TempDir
    Path dir;

    @Test
    void aFailedRename_leavesNoTemporaryFile_andWhatWasThereUntouched() throws Exception {
        // The target is a folder that is not empty: the rename onto it fails after the temporary file was written.
        Path f = dir.resolve("placement.json");
        Files.createDirectories(f);
        Files.writeString(f.resolve("inside"), "kept");
        assertThatThrownBy(() -> AtomicFiles.write(f, "{\"epoch\": \"7\"}")).isInstanceOf(UncheckedIOException.class)
                .hasMessageContaining("placement.json: cannot write");
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files).as("no *.tmp left behind").containsExactly(f);
        }
        assertThat(Files.readString(f.resolve("inside"))).isEqualTo("kept");
        // Once the rename can succeed, the whole text is there and still nothing else.
        Files.delete(f.resolve("inside"));
        Files.delete(f);
        AtomicFiles.write(f, "{\"epoch\": \"7\"}\n");
        assertThat(Files.readString(f, StandardCharsets.UTF_8)).isEqualTo("{\"epoch\": \"7\"}\n");
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files).containsExactly(f);
        }
    }
}
