package io.moemesh.gateway.support;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A placement file in a fresh temporary folder that is gone when the test JVM exits: every test run used to leave
 * one folder per fake instance or test class in /tmp (205 after a few days of CI runs).
 */
public final class ScratchPlacement {
    private ScratchPlacement() {
    }

    /** {@code <tmp>/<prefix>…/placement.json}, not yet written; both deleted at exit (the file first). */
    public static Path file(String prefix) {
        try {
            Path dir = Files.createTempDirectory(prefix);
            // deleteOnExit deletes in reverse order of registration: the file, then its (then empty) folder
            dir.toFile().deleteOnExit();
            Path file = dir.resolve("placement.json");
            file.toFile().deleteOnExit();
            return file;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
