package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Model stores under the SSD directory that no served model opens: {@code <fingerprint hex>-b<block tokens>} folders
 * of a model no longer configured, of another block size, or of a fingerprint version the service no longer
 * computes (a new version after an upgrade names every model's store anew). Nothing reads them again and their
 * bytes do not count against {@code ssd-bytes}, yet they fill the volume; the service says so at startup and leaves
 * them alone (another configuration of the same volume may still use them).
 */
public final class OrphanedStores {
    /** A store's folder name: 32 or more hex digits of fingerprint, then the block size. */
    private static final Pattern STORE = Pattern.compile("[0-9a-f]{16,}-b[0-9]+");

    private OrphanedStores() {
    }

    /** A store folder no served model uses, with the bytes of its files. */
    public record Orphan(Path dir, long bytes) {
    }

    /**
     * @param ssdDir the SSD tier's directory ({@code moemesh.kvcache.ssd-dir})
     * @param inUse  the store folders the served models opened
     * @return the other store folders in {@code ssdDir}, by name; empty when it does not exist
     */
    public static List<Orphan> find(Path ssdDir, Set<Path> inUse) {
        if (!Files.isDirectory(ssdDir)) {
            return List.of();
        }
        Set<Path> used = inUse.stream().map(p -> p.toAbsolutePath().normalize()).collect(Collectors.toSet());
        List<Orphan> out = new ArrayList<>();
        try (Stream<Path> list = Files.list(ssdDir)) {
            for (Path d : list.sorted().toList()) {
                if (Files.isDirectory(d) && STORE.matcher(d.getFileName().toString()).matches()
                        && !used.contains(d.toAbsolutePath().normalize())) {
                    out.add(new Orphan(d, bytesIn(d)));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(ssdDir + ": cannot list the model stores (" + e.getMessage() + ")", e);
        }
        return out;
    }

    /**
     * The bytes of the regular files under {@code dir}, listed first and sized after. A file that disappears between
     * the two, or while the folder is walked, counts nothing: another service sharing the SSD directory (which this
     * class allows) may be renaming a {@code *.tmp} or compacting in it.
     */
    static long bytesIn(Path dir) throws IOException {
        return bytesOf(filesIn(dir));
    }

    /** The regular files under {@code dir} (none when it is gone); entries gone before they are read are skipped. */
    static List<Path> filesIn(Path dir) throws IOException {
        List<Path> files = new ArrayList<>();
        Files.walkFileTree(dir, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) {
                if (attrs.isRegularFile()) {
                    files.add(file);
                }
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFileFailed(Path file, IOException e) throws IOException {
                if (e instanceof NoSuchFileException) {
                    return FileVisitResult.CONTINUE;
                }
                throw e;
            }
        });
        return files;
    }

    /** The files' sizes summed; one that no longer exists counts 0. */
    static long bytesOf(List<Path> files) throws IOException {
        long total = 0;
        for (Path f : files) {
            try {
                total += Files.size(f);
            } catch (NoSuchFileException gone) {
                // deleted or renamed since it was listed
            }
        }
        return total;
    }
}
