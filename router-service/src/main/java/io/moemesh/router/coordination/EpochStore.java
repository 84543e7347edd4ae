package io.moemesh.router.coordination;

import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.reports.AtomicFiles;
import io.moemesh.service.placement.PlacementFiles;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The router's epochs on disk, all written atomically: {@code <state-dir>/router/placement.json} (the current
 * published placement), {@code <state-dir>/router/epochs.json} (the highest epoch ever sent to an instance, published
 * or not: a restarted router never reuses a number some instance may hold, since it no longer knows with which
 * experts), and
 * {@code <state-dir>/placement.json}, every published placement for meshes and tools that read a placement file.
 */
public final class EpochStore {
    private final Path stateDir;

    /** @param stateDir the mesh's state folder; the router's own files go under {@code router/} in it */
    public EpochStore(Path stateDir) {
        this.stateDir = stateDir;
    }

    public Path routerDir() {
        return stateDir.resolve("router");
    }

    public Path placementFile() {
        return stateDir.resolve("placement.json");
    }

    /** The current placement of the last run, or null. */
    public Placement restorePlacement() {
        Path f = routerDir().resolve("placement.json");
        return Files.isRegularFile(f) ? PlacementFiles.read(f) : null;
    }

    /** The highest epoch ever attempted, 0 when none. */
    public long restoreHighestAttempted() {
        Path f = routerDir().resolve("epochs.json");
        if (!Files.isRegularFile(f)) {
            return 0;
        }
        try {
            String text = Files.readString(f, StandardCharsets.UTF_8);
            String digits = text.replaceAll("[^0-9]", "");
            if (digits.isEmpty()) {
                throw new IllegalArgumentException(f + ": no highestAttempted epoch in " + text.strip());
            }
            return Long.parseLong(digits);
        } catch (IOException e) {
            throw new UncheckedIOException(f + ": cannot read", e);
        }
    }

    /** Recorded before any instance is told to load {@code epoch}. */
    public void recordAttempt(long epoch) {
        AtomicFiles.write(routerDir().resolve("epochs.json"), "{\"highestAttempted\": " + epoch + "}\n");
    }

    /**
     * Recorded when {@code p} is published, before any watcher hears of it. Through {@link AtomicFiles}, which syncs
     * the file and its folder: a crash right after the publication must not leave a placement file that is empty or
     * older than what the gateways were told.
     */
    public void recordPublished(Placement p) {
        String json = PlacementFiles.toJson(p);
        AtomicFiles.write(routerDir().resolve("placement.json"), json);
        AtomicFiles.write(placementFile(), json);
    }
}
