package io.moemesh.cli.bench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * The disk's sequential read bandwidth, the restore bench's yardstick: a file (the bench reads the SSD tier's own
 * segment files) read front to back by one thread in reads of a fixed size into a direct buffer, as {@code dd bs=N}
 * would (with the page cache dropped first by the caller, the kernel's readahead is what a sequential reader gets).
 * The bench measures two sizes and takes the faster: on the virtio disk here, 256 KiB reads (a buffer that stays in
 * the core's cache) ran at 4.1-4.9 GB/s where 4 MiB reads ran at 2.9-4.1 ({@code dd} over the segment files,
 * docs/performance.md), so one size alone could understate the disk.
 */
final class DiskBandwidth {
    /** The read sizes measured (bytes). */
    static final List<Integer> CHUNK_BYTES = List.of(4 << 20, 256 << 10);

    private DiskBandwidth() {
    }

    /** How {@link #read} reads, for a report. */
    static String method(int chunkBytes) {
        return "FileChannel.read of " + ByteSizes.format(chunkBytes) + " into a direct buffer, one thread, front to back";
    }

    /** Reads every file front to back in reads of {@code chunkBytes}; returns the bytes read (the caller times it). */
    static long readAll(List<Path> files, int chunkBytes) throws IOException {
        long total = 0;
        for (Path f : files) {
            total += read(f, chunkBytes);
        }
        return total;
    }

    /** Reads the whole file in reads of {@code chunkBytes}; returns the bytes read (the caller times it). */
    static long read(Path file, int chunkBytes) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect(chunkBytes);
        long total = 0;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            while (true) {
                buf.clear();
                int n = ch.read(buf);
                if (n < 0) {
                    return total;
                }
                total += n;
            }
        }
    }
}
