package io.moemesh.gateway.placement;

import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Clock;
import java.time.Duration;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A placement file re-read when it changes (checked at most once per poll interval, from the engine thread).
 * A newer file that does not parse or does not fit the model is logged and ignored: the last good placement
 * keeps serving. Only a higher epoch replaces the current placement (epochs version placements).
 */
public final class FilePlacementSource implements PlacementSource {
    private static final Logger log = LoggerFactory.getLogger(FilePlacementSource.class);

    private final Path file;
    private final int layers;
    private final int dispatchableExperts;
    private final Duration poll;
    private final Clock clock;
    private volatile PlacementTable current;
    private FileTime seen;
    private long nextCheck;

    public FilePlacementSource(Path file, int layers, int dispatchableExperts, Duration poll, Clock clock) {
        this.file = file;
        this.layers = layers;
        this.dispatchableExperts = dispatchableExperts;
        this.poll = poll;
        this.clock = clock;
        this.current = PlacementTable.of(PlacementFiles.read(file), layers, dispatchableExperts);
        this.seen = modified();
        this.nextCheck = clock.millis() + poll.toMillis();
    }

    @Override
    public Optional<PlacementTable> current() {
        long now = clock.millis();
        if (now >= nextCheck) {
            nextCheck = now + poll.toMillis();
            reloadIfChanged();
        }
        return Optional.of(current);
    }

    /** Re-reads the file now if it changed; returns the placement in force afterwards. */
    public synchronized PlacementTable reloadIfChanged() {
        FileTime m = modified();
        if (m != null && !m.equals(seen)) {
            seen = m;
            try {
                PlacementTable next = PlacementTable.of(PlacementFiles.read(file), layers, dispatchableExperts);
                if (next.epoch() > current.epoch()) {
                    log.info("{}: placement epoch {} → {}", file, current.epoch(), next.epoch());
                    current = next;
                } else if (next.epoch() < current.epoch()) {
                    log.warn("{}: epoch {} is older than the current {}; ignored", file, next.epoch(), current.epoch());
                }
            } catch (IllegalArgumentException e) {
                log.error("{}: keeping placement epoch {}: {}", file, current.epoch(), e.getMessage());
            }
        }
        return current;
    }

    private FileTime modified() {
        try {
            return Files.getLastModifiedTime(file);
        } catch (IOException e) {
            return null;
        }
    }
}
