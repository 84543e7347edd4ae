package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;

/**
 * One segment file: a {@link SegmentHeader} and fixed-size records appended after it. Positional reads are
 * thread-safe; appends come from one writer at a time (the tier's append lock or the compactor's own segment).
 * {@code liveBytes} and {@code deadBytes} are guarded by the tier's metadata monitor.
 */
final class Segment {
    static final String SUFFIX = ".kvseg";

    final long id;
    final Path path;
    final SegmentHeader header;
    final int recordBytes;
    private final FileChannel channel;
    /** Bytes in the file: the header and whole records (the append position). */
    private volatile long size;
    /** {@link #size} when the last {@link #force()} began (0 before one): tests check what was forced. */
    private volatile long forcedSize;
    long liveBytes;
    long deadBytes;

    private Segment(long id, Path path, SegmentHeader header, FileChannel channel, long size) {
        this.id = id;
        this.path = path;
        this.header = header;
        this.recordBytes = header.recordBytes();
        this.channel = channel;
        this.size = size;
    }

    static Path pathOf(Path dir, long id) {
        return dir.resolve(String.format("seg-%016d%s", id, SUFFIX));
    }

    /**
     * Creates the file crash-safely: the header goes to a temporary file that is forced and then renamed, so a
     * segment file never exists without its whole header.
     */
    static Segment create(Path dir, SegmentHeader header) throws IOException {
        Path path = pathOf(dir, header.segmentId());
        Path tmp = dir.resolve(path.getFileName() + ".tmp");
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            writeFully(ch, header.encode(), 0);
            ch.force(true);
        }
        Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE);
        syncDirectory(dir);
        FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
        return new Segment(header.segmentId(), path, header, ch, SegmentHeader.BYTES);
    }

    /** Opens an existing file whose header was already read; {@code size} is its length after any truncation. */
    static Segment open(Path path, SegmentHeader header, long size) throws IOException {
        FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
        return new Segment(header.segmentId(), path, header, ch, size);
    }

    long size() {
        return size;
    }

    /** Bytes of records (live, dead or failed) after the header. */
    long recordArea() {
        return size - SegmentHeader.BYTES;
    }

    /** Appends one whole record at the end. @return its offset. On failure the file is cut back to its old end. */
    long append(ByteBuffer record) throws IOException {
        long at = size;
        try {
            writeFully(channel, record, at);
        } catch (IOException e) {
            try {
                channel.truncate(at);
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
        size = at + record.capacity();
        return at;
    }

    /**
     * Reads the whole record at {@code offset} into {@code into} (a reused direct buffer of at least
     * {@link #recordBytes}: the read goes straight into it, without the JDK's temporary direct buffer); on return
     * its position is 0 and its limit the record's end.
     */
    void readInto(long offset, ByteBuffer into) throws IOException {
        into.clear().limit(recordBytes);
        while (into.hasRemaining()) {
            if (channel.read(into, offset + into.position()) < 0) {
                throw new IOException(path + ": ends inside the record at " + offset);
            }
        }
        into.position(0);
    }

    /** Reads the whole record at {@code offset} into a new buffer. */
    ByteBuffer read(long offset) throws IOException {
        return read(channel, offset);
    }

    /**
     * A read-only descriptor of its own on this file, for {@link #read(FileChannel, long)}: an interrupt during
     * I/O closes the channel it happens on, and this segment's own channel is the one every get reads through.
     */
    FileChannel openPrivateReader() throws IOException {
        return FileChannel.open(path, StandardOpenOption.READ);
    }

    /** Reads the whole record at {@code offset} through {@code ch} (a {@link #openPrivateReader()}). */
    ByteBuffer read(FileChannel ch, long offset) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(recordBytes);
        while (b.hasRemaining()) {
            if (ch.read(b, offset + b.position()) < 0) {
                throw new IOException(path + ": ends inside the record at " + offset);
            }
        }
        b.position(0);
        return b;
    }

    /** Cuts a torn tail off (at open, before any append). */
    void truncateTo(long bytes) throws IOException {
        channel.truncate(bytes);
        size = bytes;
    }

    /**
     * Forces the file's written bytes to stable storage. When this segment's channel was closed under it (I/O of an
     * interrupted thread closes the channel, e.g. an append that failed so; compaction closes what it retires), a
     * descriptor of its own does it: fsync is per file, not per descriptor. A file compaction already deleted
     * needs nothing (its live records were copied and forced first).
     */
    void force() throws IOException {
        long at = size;
        try {
            channel.force(false);
        } catch (ClosedChannelException closed) {
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                ch.force(false);
            } catch (NoSuchFileException deleted) {
                // compacted: nothing of it is needed
            }
        }
        forcedSize = at;
    }

    long forcedSize() {
        return forcedSize;
    }

    void close() {
        try {
            channel.close();
        } catch (IOException ignored) {
            // Closing a channel we only read from or already forced loses nothing.
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b, long at) throws IOException {
        long pos = at;
        while (b.hasRemaining()) {
            pos += ch.write(b, pos);
        }
    }

    /** Makes a rename or delete in {@code dir} durable (POSIX: fsync the directory). */
    static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            // Some file systems refuse to open a directory; the rename is still atomic, only its durability waits.
        }
    }
}
