package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Model stores under the SSD directory that no served model opens: {@code <fingerprint hex>-b<block tokens>} folders
 * of a model no longer configured, of another block size, or of a fingerprint version the service no longer
 * computes (a new version after an upgrade names every model's store anew). Nothing reads them again and their
 * bytes do not count against {@code ssd-bytes}, yet they fill the volume. {@link #find} lists them; {@link #delete}
 * removes one, but only a folder that holds nothing a store's tier does not write, and only under the store's own
 * lock, so neither a folder of something else nor a store another process has open is ever deleted.
 */
public final class OrphanedStores {
    /** A store's folder name: hex digits of fingerprint (64 of them; at least 16 taken), then the block size. */
    private static final Pattern STORE = Pattern.compile("[0-9a-f]{16,}-b[0-9]+");
    /**
     * The files an SSD tier writes in its folder: segments, their tombstones, a segment whose creation did not finish
     * ({@code *.tmp}), one quarantined for a damaged header ({@code *.corrupt}); and its lock file.
     */
    private static final Pattern STORE_FILE = Pattern.compile("seg-\\d{16}(\\.kvseg|\\.kvdead|\\.kvseg\\.tmp"
            + "|\\.kvseg\\.corrupt)|\\" + DirectoryLock.FILE);

    private OrphanedStores() {
    }

    /** A store folder no served model uses, with the bytes of its files. */
    public record Orphan(Path dir, long bytes) {
    }

    /**
     * @param ssdDir the SSD tier's directory ({@code moemesh.kvcache.ssd-dir})
     * @param inUse  the store folders the served models open
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
     * Deletes the store folder {@code store} and its files, if it is one: a directory itself (not a link to one)
     * holding only regular files an SSD tier writes (segments starting with the segment magic, their tombstones,
     * {@code *.tmp}, {@code *.corrupt}, {@code .lock}), and no tier, of this process or another, has it open: its
     * lock is taken first and the folder checked again under it. Anything else is left as it is.
     *
     * @return empty when it was deleted, else why it was left (a failure midway leaves a part of its files, which no
     *         tier reads as a store any more than before)
     */
    public static Optional<String> delete(Path store) {
        Optional<String> foreign = notAStore(store);
        if (foreign.isPresent()) {
            return foreign;
        }
        DirectoryLock lock;
        try {
            lock = DirectoryLock.acquire(store);
        } catch (SsdDirectoryLockedException e) {
            return Optional.of("it is open: " + e.getMessage());
        } catch (UncheckedIOException e) {
            return Optional.of("it cannot be locked (" + e.getCause().getMessage() + ")");
        }
        try (lock) {
            foreign = notAStore(store); // again: it may have changed before the lock was ours
            if (foreign.isPresent()) {
                return foreign;
            }
            for (Path f : entries(store)) {
                if (!f.getFileName().toString().equals(DirectoryLock.FILE)) {
                    Files.deleteIfExists(f);
                }
            }
        } catch (IOException e) {
            return Optional.of("deleting its files failed (" + e.getMessage() + ")");
        }
        try {
            // The lock file went with the lock's close. A tier opening the store from now on finds the folder gone
            // before it opens the lock file and makes it again (DirectoryLock.acquire), or makes this delete fail.
            Files.delete(store);
            return Optional.empty();
        } catch (DirectoryNotEmptyException e) {
            return Optional.of("a file appeared in it while it was being deleted (a tier opening it?)");
        } catch (IOException e) {
            return Optional.of("deleting the emptied folder failed (" + e.getMessage() + ")");
        }
    }

    /** Why {@code dir} is not a folder of a store's files alone, or empty when it is. */
    static Optional<String> notAStore(Path dir) {
        if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
            return Optional.of("not a directory (a symbolic link or a file), so not a folder the service made");
        }
        try {
            for (Path f : entries(dir)) {
                String name = f.getFileName().toString();
                if (!STORE_FILE.matcher(name).matches()
                        || !Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)) {
                    return Optional.of("it holds " + name + ", which is not a file of a store");
                }
                if (name.endsWith(Segment.SUFFIX) && !startsWithSegmentMagic(f)) {
                    return Optional.of("its " + name + " does not start as a segment file does");
                }
            }
            return Optional.empty();
        } catch (IOException e) {
            return Optional.of("it cannot be read (" + e.getMessage() + ")");
        }
    }

    private static List<Path> entries(Path dir) throws IOException {
        try (Stream<Path> list = Files.list(dir)) {
            return list.sorted().toList();
        }
    }

    private static boolean startsWithSegmentMagic(Path segment) throws IOException {
        try (InputStream in = Files.newInputStream(segment, LinkOption.NOFOLLOW_LINKS)) {
            return Arrays.equals(in.readNBytes(SegmentHeader.MAGIC.length), SegmentHeader.MAGIC);
        } catch (NoSuchFileException gone) {
            return true; // deleted since it was listed: nothing of it is left to mistake
        }
    }

    /** The bytes of the regular files under {@code dir}, 0 when it does not exist. */
    public static long bytesUnder(Path dir) {
        try {
            return bytesIn(dir);
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot size the store (" + e.getMessage() + ")", e);
        }
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
