package io.moemesh.cli.bench;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Makes the next reads of some files come from the disk, not the page cache, for the restore bench (issue 11's "page
 * cache dropped or bypassed on both sides"). The strongest way this process is allowed:
 * <ol>
 *   <li>{@link Method#DROP_CACHES}: {@code sync; echo 1 > /proc/sys/vm/drop_caches} (root): the whole clean page
 *       cache goes;</li>
 *   <li>{@link Method#FADVISE}: {@code posix_fadvise(POSIX_FADV_DONTNEED)} on every file (any user who can open the
 *       files; Linux drops their clean pages, and they were forced before): called through the FFM API;</li>
 *   <li>{@link Method#NONE}: neither worked; reads may be cached, which the report says.</li>
 * </ol>
 */
final class PageCache {
    /** {@code POSIX_FADV_DONTNEED} on Linux. */
    private static final int FADV_DONTNEED = 4;
    private static final Path DROP_CACHES = Path.of("/proc/sys/vm/drop_caches");

    enum Method {
        DROP_CACHES("page cache dropped (sync; echo 1 > /proc/sys/vm/drop_caches)"),
        FADVISE("page cache of the files evicted (posix_fadvise DONTNEED; /proc/sys/vm/drop_caches not writable)"),
        NONE("page cache NOT dropped (neither /proc/sys/vm/drop_caches nor posix_fadvise worked): reads may be cached");

        private final String description;

        Method(String description) {
            this.description = description;
        }

        String description() {
            return description;
        }
    }

    private PageCache() {
    }

    /** Evicts the files' pages by the strongest method allowed; {@code files} must have been forced already. */
    static Method drop(List<Path> files) {
        if (dropCaches()) {
            return Method.DROP_CACHES;
        }
        try {
            for (Path f : files) {
                fadvise(f);
            }
            return Method.FADVISE;
        } catch (RuntimeException | Error e) {
            // no libc posix_fadvise (not Linux), or native access refused: nothing else to try
            return Method.NONE;
        }
    }

    private static boolean dropCaches() {
        if (!Files.isWritable(DROP_CACHES)) {
            return false;
        }
        try {
            // drop_caches drops clean pages only: write every dirty page first (other processes' too)
            Process sync = new ProcessBuilder("sync").inheritIO().start();
            if (!sync.waitFor(5, TimeUnit.MINUTES)) {
                sync.destroyForcibly();
            }
            Files.writeString(DROP_CACHES, "1");
            return true;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /**
     * {@code posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)} on a new read-only descriptor of the file.
     *
     * @throws IllegalStateException when a call fails
     */
    static void fadvise(Path file) {
        Linker linker = Linker.nativeLinker();
        var libc = linker.defaultLookup();
        MethodHandle open = linker.downcallHandle(libc.find("open").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT,
                        ValueLayout.JAVA_INT), Linker.Option.firstVariadicArg(2));
        MethodHandle advise = linker.downcallHandle(libc.find("posix_fadvise").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
        MethodHandle close = linker.downcallHandle(libc.find("close").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment name = arena.allocateFrom(file.toAbsolutePath().toString());
            int fd = (int) open.invokeExact(name, 0, 0); // O_RDONLY
            if (fd < 0) {
                throw new IllegalStateException("open(" + file + ") failed");
            }
            try {
                int rc = (int) advise.invokeExact(fd, 0L, 0L, FADV_DONTNEED);
                if (rc != 0) {
                    throw new IllegalStateException("posix_fadvise(" + file + ") returned " + rc);
                }
            } finally {
                int ignored = (int) close.invokeExact(fd);
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("posix_fadvise(" + file + ") failed: " + t, t);
        }
    }
}
