package io.moemesh.cli.bench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;

/**
 * The disk's sequential read bandwidth, the restore bench's yardstick: one file of the restored size in the same
 * directory (so on the same file system and device), written with random bytes and forced, then read front to back
 * by one thread in {@link #CHUNK_BYTES} reads into a direct buffer, as {@code dd bs=4M} would (with the page cache
 * dropped first by the caller, the kernel's readahead is what a sequential reader gets).
 */
final class DiskBandwidth {
    /** Bytes per read (and per write). */
    static final int CHUNK_BYTES = 4 << 20;
    static final String METHOD = "FileChannel.read of 4 MiB into a direct buffer, one thread, front to back";

    private DiskBandwidth() {
    }

    /** Writes {@code bytes} random bytes to {@code file} (replacing it) and forces them to the disk. */
    static void write(Path file, long bytes) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK_BYTES);
        SplittableRandom random = new SplittableRandom(7);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            long left = bytes;
            while (left > 0) {
                buf.clear();
                while (buf.remaining() >= Long.BYTES) {
                    buf.putLong(random.nextLong());
                }
                buf.flip().limit((int) Math.min(CHUNK_BYTES, left));
                while (buf.hasRemaining()) {
                    left -= ch.write(buf);
                }
            }
            ch.force(true);
        }
    }

    /** Reads the whole file; returns the bytes read (the caller times it). */
    static long read(Path file) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK_BYTES);
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
