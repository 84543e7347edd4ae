package io.moemesh.kvcache.tier;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedByInterruptException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Set;

/**
 * One segment file: a {@link SegmentHeader} and fixed-size records appended after it, and its tombstones
 * ({@link DeadLog}, a file beside it from the first one on). Positional reads are thread-safe; appends come from one
 * writer at a time (the tier's append lock or the compactor's own segment). {@code liveBytes} and {@code deadBytes}
 * are guarded by the monitor of the tier's {@link SsdIndex}.
 *
 * <p>Its channel heals itself: a {@link FileChannel} is an {@code InterruptibleChannel}, so a thread interrupted
 * during its I/O (a cancelled task, an executor's {@code shutdownNow}) closes it for every thread, and every later get
 * of the segment's blocks would miss until a restart. A channel closed while the segment is not {@link #close()}d is
 * reopened: the interrupted thread's own call fails ({@link InterruptedIOException}), the others' are retried.
 */
final class Segment {
    static final String SUFFIX = ".kvseg";

    final long id;
    final Path path;
    final SegmentHeader header;
    final int recordBytes;
    /** Replaced only by {@link #reopenAfter} (under this segment's monitor), when I/O closed it. */
    private volatile FileChannel channel;
    /** Set by {@link #close()}: the segment is retired, its channel stays closed. */
    private volatile boolean retired;
    /** Bytes in the file: the header and whole records (the append position). */
    private volatile long size;
    /** {@link #size} when the last {@link #force()} began (0 before one): tests check what was forced. */
    private volatile long forcedSize;
    long liveBytes;
    long deadBytes;
    /** The tombstones of its records, forced and closed with it. */
    private final DeadLog dead;

    private Segment(long id, Path path, SegmentHeader header, FileChannel channel, long size, DeadLog dead) {
        this.id = id;
        this.dead = dead;
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
     * segment file never exists without its whole header. Owner-only (0600, {@link OwnerOnly}). A creation that fails
     * leaves nothing behind (the temporary file, or the renamed one holding no record, is deleted): a put that fails
     * here and the next one's try must not leave a file each.
     */
    static Segment create(Path dir, SegmentHeader header) throws IOException {
        Path path = pathOf(dir, header.segmentId());
        Path tmp = dir.resolve(path.getFileName() + ".tmp");
        Path made = null;
        FileChannel ch = null;
        try {
            ch = FileChannel.open(tmp, Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE),
                    OwnerOnly.file(dir));
            made = tmp;
            writeFully(ch, header.encode(), 0);
            ch.force(true);
            ch.close();
            Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE);
            made = path;
            syncDirectory(dir);
            ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            return new Segment(header.segmentId(), path, header, ch, SegmentHeader.BYTES,
                    new DeadLog(DeadLog.pathOf(dir, header.segmentId()), header.segmentId(), 0));
        } catch (IOException | RuntimeException | Error e) {
            if (ch != null) {
                try {
                    ch.close();
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            if (made != null) {
                try {
                    Files.deleteIfExists(made);
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }

    /**
     * Opens an existing file whose header was already read; {@code size} is its length after any truncation,
     * {@code deadLogBytes} the length of its tombstone file (0 when it has none).
     */
    static Segment open(Path path, SegmentHeader header, long size, long deadLogBytes) throws IOException {
        FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
        return new Segment(header.segmentId(), path, header, ch, size,
                new DeadLog(DeadLog.pathOf(path.getParent(), header.segmentId()), header.segmentId(), deadLogBytes));
    }

    /** Its tombstones ({@link DeadLog}). */
    DeadLog deadLog() {
        return dead;
    }

    long size() {
        return size;
    }

    /** Bytes of records (live, dead or failed) after the header. */
    long recordArea() {
        return size - SegmentHeader.BYTES;
    }

    /**
     * Appends one whole record at the end. @return its offset. On failure the file is cut back to its old end; a
     * channel closed by another thread's interrupt is reopened and the append retried.
     */
    long append(ByteBuffer record) throws IOException {
        long at = size;
        for (int attempt = 0; ; attempt++) {
            FileChannel ch = channel;
            try {
                writeFully(ch, record, at);
                size = at + record.capacity();
                return at;
            } catch (IOException e) {
                IOException failure = e;
                boolean retry = false;
                boolean interrupted = Thread.interrupted(); // the clean-up below must not be interrupted in turn
                try {
                    if (e instanceof ClosedChannelException closed) {
                        ch = reopenAfter(ch, closed);
                        retry = !interrupted && !(e instanceof ClosedByInterruptException) && attempt < 2;
                        if (!retry && interrupted) {
                            failure = interruptedIo("append", e);
                        }
                    }
                    ch.truncate(at);
                } catch (IOException suppressed) {
                    failure.addSuppressed(suppressed);
                    retry = false;
                } finally {
                    if (interrupted) {
                        Thread.currentThread().interrupt();
                    }
                }
                if (!retry) {
                    throw failure;
                }
                record.rewind();
            }
        }
    }

    /**
     * Reads the whole record at {@code offset} into {@code into} (a reused direct buffer of at least
     * {@link #recordBytes}: the read goes straight into it, without the JDK's temporary direct buffer); on return
     * its position is 0 and its limit the record's end.
     */
    void readInto(long offset, ByteBuffer into) throws IOException {
        for (int attempt = 0; ; attempt++) {
            FileChannel ch = channel;
            into.clear().limit(recordBytes);
            try {
                while (into.hasRemaining()) {
                    if (ch.read(into, offset + into.position()) < 0) {
                        throw new IOException(path + ": ends inside the record at " + offset);
                    }
                }
                into.position(0);
                return;
            } catch (ClosedChannelException closed) {
                reopenAfter(ch, closed); // throws it when the segment is retired: the caller looks the block up again
                if (closed instanceof ClosedByInterruptException || Thread.currentThread().isInterrupted()) {
                    throw interruptedIo("read", closed);
                }
                if (attempt >= 2) {
                    throw closed;
                }
            }
        }
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

    /**
     * Cuts the file back to {@code bytes}: a torn tail at open, before any append, the copies a failed compaction
     * appended to its output after the last record it committed, or the record of a put that failed after writing it
     * (never indexed, never located, so no reader's extent is cut). A channel an interrupt closed is reopened first.
     */
    void truncateTo(long bytes) throws IOException {
        FileChannel ch = channel;
        try {
            ch.truncate(bytes);
        } catch (ClosedChannelException closed) {
            if (closed instanceof ClosedByInterruptException || Thread.currentThread().isInterrupted()) {
                reopenAfter(ch, closed);
                throw interruptedIo("truncate", closed);
            }
            reopenAfter(ch, closed).truncate(bytes);
        }
        size = bytes;
    }

    /**
     * Forces the file's written bytes to stable storage. When this segment's channel was closed under it (I/O of an
     * interrupted thread closes the channel, e.g. an append that failed so; compaction closes what it retires), a
     * descriptor of its own does it: fsync is per file, not per descriptor. A file compaction already deleted
     * needs nothing (its live records were copied and forced first). Its tombstones ({@link DeadLog}) are forced
     * with it: they are on the same schedule as the records.
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
        dead.force();
        forcedSize = at;
    }

    long forcedSize() {
        return forcedSize;
    }

    void close() {
        synchronized (this) {
            retired = true;
        }
        try {
            channel.close();
        } catch (IOException ignored) {
            // Closing a channel we only read from or already forced loses nothing.
        }
        dead.close();
    }

    /** Closes it and deletes its file, then its tombstones' (in that order: {@link DeadLog#delete()}). */
    void delete() throws IOException {
        close();
        Files.deleteIfExists(path);
        dead.delete();
    }

    /**
     * The channel to go on with after {@code failed} threw {@code closed}: a new one when {@code failed} is still
     * this segment's channel and the segment is not retired (another caller may have reopened it already).
     * @throws ClosedChannelException {@code closed}, when the segment was retired or its file is gone
     */
    private synchronized FileChannel reopenAfter(FileChannel failed, ClosedChannelException closed)
            throws IOException {
        if (retired) {
            throw closed;
        }
        if (channel == failed && !failed.isOpen()) {
            try {
                channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            } catch (NoSuchFileException deleted) {
                closed.addSuppressed(deleted);
                throw closed;
            }
        }
        return channel;
    }

    private InterruptedIOException interruptedIo(String what, IOException cause) {
        InterruptedIOException e = new InterruptedIOException(path + ": " + what + " interrupted");
        e.initCause(cause);
        return e;
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
