package io.moemesh.cli.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The machine's load average, printed next to every benchmark figure: a loaded machine stretches them all. */
public final class LoadAverage {
    private LoadAverage() {
    }

    /** The first three fields of /proc/loadavg (1, 5 and 15 minutes), or "n/a" off Linux. */
    public static String now() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | UncheckedIOException | ArrayIndexOutOfBoundsException e) {
            return "n/a";
        }
    }
}
