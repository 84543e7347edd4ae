package io.moemesh.gateway.placement;

import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import java.util.zip.GZIPInputStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A placement file re-read when it changes (checked at most once per poll interval, measured on a monotonic clock
 * ({@link System#nanoTime()}): a step of the wall clock neither stops nor hurries the checks).
 * A newer file that does not parse or does not fit the model is logged and ignored: the last good placement
 * keeps serving. Only a higher epoch replaces the current placement (epochs version placements); a file with an
 * older epoch, or the current epoch with other contents, is logged and ignored. Next to a router
 * ({@link RouterPlacementSource}) the file may be missing or not fit at startup ({@link #optional}): it then has no
 * placement until a good version of it appears.
 *
 * <p>Two forms (docs/kubernetes.md, "Placement size"): the file is read as gzip when its content starts with gzip's
 * magic bytes ({@code 1f 8b}; JSON never does), else as JSON, whatever its name. And next to a configured file
 * {@code F} not ending in {@code .gz}, the file {@code F.gz} is read too: the router's placement ConfigMap holds
 * {@code placement.json} (compact JSON) or, past its gzip threshold, {@code placement.json.gz} (in binaryData), never
 * both, and a mounted ConfigMap shows every key as a file. When both files exist the higher valid epoch of the two is
 * taken (the epoch rules above apply to it); one that is missing or bad is skipped while the other is good.
 */
public final class FilePlacementSource implements PlacementSource {
    private static final Logger log = LoggerFactory.getLogger(FilePlacementSource.class);

    private final Path file;
    /** {@code file}'s gzip sibling ({@code file + ".gz"}), or null when {@code file} itself ends in .gz. */
    private final Path gzipSibling;
    private final int layers;
    private final int dispatchableExperts;
    private final long pollNanos;
    private final LongSupplier nanoClock;
    private volatile PlacementTable current;
    private Placement currentPlacement;
    private Versions seen;
    /**
     * The nano time of the next check. {@link #current()} is called from several threads (the engine thread, the
     * router watch's): whoever moves it on does the check, the others keep the placement they see.
     */
    private final AtomicLong nextCheck;

    /**
     * What tells one version of the file from the next. The modification time alone does not: Linux file
     * timestamps move in clock ticks of a few milliseconds, so a file rewritten within one tick of the last read
     * keeps its time and would never be read again. A file replaced by rename ({@link PlacementFiles#write}, the
     * router's way) is a new inode (the file key); an edit in place almost always changes the size or the time.
     */
    private record Version(FileTime modified, long size, Object fileKey) {
    }

    /** The versions of the file and of its gzip sibling; null for one that does not exist. */
    private record Versions(Version plain, Version gzip) {
        boolean any() {
            return plain != null || gzip != null;
        }
    }

    /**
     * @throws IllegalArgumentException when the file is missing, does not parse or does not fit the model (the
     *                                  message names the file)
     */
    public FilePlacementSource(Path file, int layers, int dispatchableExperts, Duration poll, LongSupplier nanoClock) {
        this(file, layers, dispatchableExperts, poll, nanoClock, true);
    }

    /**
     * A file that need not exist (or fit) yet: the router writes it, and delivers the same epochs itself. Until a
     * good version appears {@link #current()} is empty.
     */
    public static FilePlacementSource optional(Path file, int layers, int dispatchableExperts, Duration poll,
                                               LongSupplier nanoClock) {
        return new FilePlacementSource(file, layers, dispatchableExperts, poll, nanoClock, false);
    }

    /** @param nanoClock {@link System#nanoTime()} (tests: a clock they move) */
    private FilePlacementSource(Path file, int layers, int dispatchableExperts, Duration poll, LongSupplier nanoClock,
                                boolean required) {
        this.file = file;
        String fileName = file.getFileName() == null ? "" : file.getFileName().toString();
        this.gzipSibling = fileName.endsWith(".gz") ? null : file.resolveSibling(fileName + ".gz");
        this.layers = layers;
        this.dispatchableExperts = dispatchableExperts;
        this.pollNanos = poll.toNanos();
        this.nanoClock = nanoClock;
        // The version before the read: a write during the read is then seen at the next check, not lost.
        this.seen = version();
        try {
            Placement read = readNewest();
            this.current = table(read);
            this.currentPlacement = read;
        } catch (IllegalArgumentException e) {
            if (required) {
                throw e;
            }
            log.warn("no placement from the file yet ({}); waiting for it or the router", e.getMessage());
        }
        this.nextCheck = new AtomicLong(nanoClock.getAsLong() + pollNanos);
    }

    @Override
    public Optional<PlacementTable> current() {
        long now = nanoClock.getAsLong();
        long next = nextCheck.get();
        // Compared by difference: nano times may wrap around.
        if (now - next >= 0 && nextCheck.compareAndSet(next, now + pollNanos)) {
            reloadIfChanged();
        }
        return Optional.ofNullable(current);
    }

    /** Re-reads the file now if it changed; returns the placement in force afterwards (null: none yet). */
    public synchronized PlacementTable reloadIfChanged() {
        Versions v = version();
        if (v.any() && !v.equals(seen)) {
            seen = v;
            try {
                Placement read = readNewest();
                PlacementTable next = table(read);
                if (current == null || next.epoch() > current.epoch()) {
                    log.info("{}: placement epoch {} → {}", file, current == null ? 0 : current.epoch(), next.epoch());
                    current = next;
                    currentPlacement = read;
                } else if (next.epoch() < current.epoch()) {
                    log.warn("{}: epoch {} is older than the current {}; ignored", file, next.epoch(), current.epoch());
                } else if (!read.equals(currentPlacement)) {
                    log.warn("{}: epoch {} is the current epoch with other contents; ignored (a new placement needs a "
                            + "higher epoch)", file, next.epoch());
                }
            } catch (IllegalArgumentException e) {
                // The message names the file.
                log.error("keeping placement epoch {}: {}", current == null ? 0 : current.epoch(), e.getMessage());
            }
        }
        return current;
    }

    private PlacementTable table(Placement p) {
        try {
            return PlacementTable.of(p, layers, dispatchableExperts);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    private Versions version() {
        return new Versions(version(file), gzipSibling == null ? null : version(gzipSibling));
    }

    private static Version version(Path path) {
        try {
            BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
            return new Version(a.lastModifiedTime(), a.size(), a.fileKey());
        } catch (IOException e) {
            return null;
        }
    }

    /**
     * The placement of highest epoch among the file and its gzip sibling, those that exist and parse.
     *
     * @throws IllegalArgumentException naming the file(s) when neither exists or none parses
     */
    private Placement readNewest() {
        List<Placement> good = new ArrayList<>();
        List<IllegalArgumentException> bad = new ArrayList<>();
        for (Path path : gzipSibling == null ? List.of(file) : List.of(file, gzipSibling)) {
            if (!Files.isRegularFile(path)) {
                continue;
            }
            try {
                good.add(read(path));
            } catch (IllegalArgumentException e) {
                bad.add(e);
            }
        }
        if (good.isEmpty()) {
            if (!bad.isEmpty()) {
                throw bad.getFirst();
            }
            throw new IllegalArgumentException(file + ": placement file not found"
                    + (gzipSibling == null ? "" : " (nor " + gzipSibling.getFileName() + ")"));
        }
        // The other form is only logged: the good one serves.
        bad.forEach(e -> log.warn("skipped: {}", e.getMessage()));
        return good.stream().max(Comparator.comparing(Placement::getEpoch, Long::compareUnsigned)).orElseThrow();
    }

    /** One file: gzip when it starts with gzip's magic bytes (1f 8b), else JSON. */
    static Placement read(Path path) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(path);
        } catch (IOException e) {
            throw new IllegalArgumentException(path + ": cannot read placement file (" + e.getMessage() + ")", e);
        }
        if (bytes.length >= 2 && (bytes[0] & 0xff) == 0x1f && (bytes[1] & 0xff) == 0x8b) {
            try (GZIPInputStream in = new GZIPInputStream(new ByteArrayInputStream(bytes))) {
                bytes = in.readAllBytes();
            } catch (IOException e) {
                throw new IllegalArgumentException(path + ": starts like gzip but does not decompress ("
                        + e.getMessage() + ")", e);
            }
        }
        return PlacementFiles.parse(new String(bytes, StandardCharsets.UTF_8), path.toString());
    }
}
