package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.zip.CRC32C;

/**
 * The tombstones of one segment, {@code seg-<id>.kvdead} beside its {@code seg-<id>.kvseg} (segment format version
 * 2): which of its records are no longer live (evicted, removed, dropped for a failed check, moved out by a stopped
 * compaction, superseded by a later copy), and, once compaction retired the whole segment, a mark saying so. The
 * index rebuild at open skips what they name, so a restart serves the blocks the tier held, not every record still
 * in the files (Bitcask's tombstones, Sheehy and Smith 2010).
 *
 * <p>Why a file per segment rather than tombstone records in the active segment, as Bitcask does: a segment's
 * records all have one size (what keeps the scan in step past a damaged length field), and a tombstone that names its
 * record's exact place (segment id, offset and key) needs no ordering against later records of the same key. It
 * lives and dies with the segment it names (deleted after it), so tombstones are never compacted.
 *
 * <p>Entries of {@value #ENTRY_BYTES} bytes, little-endian: magic (int32, {@code KVT1} a tombstone, {@code KVX1}
 * the segment retired), CRC32C of bytes [8, 64) (int32), segment id (int64), record offset (int64, -1 for retired),
 * key (32 bytes, zeros for retired), 8 zero bytes. A partial entry at the end (a crash mid-append) is cut off at
 * open; an entry whose magic, CRC or segment id does not match is ignored: the record it named comes back (a cache
 * block the tier had let go of, never wrong bytes).
 *
 * <p>Created with the first entry, 0600. Appends and the close are serialised by this object's monitor; the file is
 * forced on the fsync policy's schedule ({@link FsyncSchedule#afterTombstone}), and with its segment
 * ({@link Segment#force()}).
 */
final class DeadLog {
    static final String SUFFIX = ".kvdead";
    static final int ENTRY_BYTES = 64;
    private static final int TOMBSTONE = 0x3154564B; // "KVT1"
    private static final int RETIRED = 0x3158564B; // "KVX1"

    /** What a segment's tombstone file says. @param bytes its length once a torn tail is cut off */
    record Read(boolean retired, Map<Long, BlockKey> dead, long bytes, int ignored) {
        static final Read NONE = new Read(false, Map.of(), 0, 0);

        /** Whether the record at {@code offset} with {@code key} is dead. */
        boolean names(long offset, BlockKey key) {
            return key.equals(dead.get(offset));
        }
    }

    private final Path path;
    private final long segmentId;
    /** Null until the first append or force needs it. */
    private FileChannel channel;
    /** Volatile: {@link #size()} is read without the monitor (the index's accounting must not wait on a force). */
    private volatile long size;
    /** Bytes the last force covered (tests: whether a tombstone is durable yet). */
    private volatile long forcedSize;
    /** The file's directory entry is durable: it was there at open, or a force synced the directory since. */
    private boolean entryDurable;
    private boolean closed;

    /** @param bytes the file's length, 0 when there is none yet */
    DeadLog(Path path, long segmentId, long bytes) {
        this.path = path;
        this.segmentId = segmentId;
        this.size = bytes;
        this.entryDurable = bytes > 0;
    }

    static Path pathOf(Path dir, long segmentId) {
        return dir.resolve(String.format("seg-%016d%s", segmentId, SUFFIX));
    }

    Path path() {
        return path;
    }

    long size() {
        return size;
    }

    long forcedSize() {
        return forcedSize;
    }

    /** Appends a tombstone of the record at {@code offset}. @return false when the segment is closed (retired) */
    boolean append(long offset, BlockKey key) throws IOException {
        return write(TOMBSTONE, offset, key.bytes());
    }

    /** Appends the mark that compaction retired the segment: the next open deletes it, whatever it holds. */
    boolean appendRetired() throws IOException {
        return write(RETIRED, -1, new byte[BlockKey.BYTES]);
    }

    private synchronized boolean write(int magic, long offset, byte[] key) throws IOException {
        if (closed) {
            return false;
        }
        ByteBuffer e = ByteBuffer.allocate(ENTRY_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        e.putInt(magic).putInt(0).putLong(segmentId).putLong(offset).put(key);
        e.putInt(4, crc(e.array()));
        e.position(0);
        FileChannel ch = open();
        long at = size;
        try {
            while (e.hasRemaining()) {
                at += ch.write(e, at);
            }
        } catch (IOException failed) {
            try {
                if (ch.isOpen()) {
                    ch.truncate(size); // no partial entry before the next one
                }
            } catch (IOException suppressed) {
                failed.addSuppressed(suppressed);
            }
            throw failed;
        }
        size += ENTRY_BYTES;
        return true;
    }

    /**
     * Forces the entries (and, the first time, the file's directory entry). Outside the monitor, so an append to
     * this file does not wait for the force.
     */
    void force() throws IOException {
        FileChannel ch;
        boolean newEntry;
        long at;
        synchronized (this) {
            if (closed || size == 0) {
                return;
            }
            ch = open();
            newEntry = !entryDurable;
            at = size;
        }
        try {
            ch.force(false);
        } catch (ClosedChannelException e) {
            synchronized (this) {
                if (closed) {
                    return; // retired or the tier closed: nothing of it is needed
                }
                ch = open(); // an interrupt closed it under us: fsync is per file, any descriptor does
            }
            ch.force(false);
        }
        if (newEntry) {
            Segment.syncDirectory(path.getParent());
            synchronized (this) {
                entryDurable = true;
            }
        }
        forcedSize = at;
    }

    /** The channel, opened (or reopened after an interrupt closed it) when needed; under the monitor. */
    private FileChannel open() throws IOException {
        if (channel == null || !channel.isOpen()) {
            // CREATE: the permissions apply when this creates the file (0600), not to one found at open.
            channel = FileChannel.open(path, Set.of(StandardOpenOption.CREATE, StandardOpenOption.READ,
                    StandardOpenOption.WRITE), OwnerOnly.file(path.getParent()));
        }
        return channel;
    }

    /** No more appends (the segment is retired or the tier closed); the file stays. */
    synchronized void close() {
        closed = true;
        if (channel != null) {
            try {
                channel.close();
            } catch (IOException ignored) {
                // Its entries were forced as the policy says, or are not needed.
            }
        }
    }

    /** Closes and deletes the file (after its segment's: a crash between leaves one the next open removes). */
    void delete() throws IOException {
        close();
        Files.deleteIfExists(path);
    }

    /**
     * Reads a segment's tombstone file at open, cutting a torn tail off.
     *
     * @return {@link Read#NONE} when there is no file
     */
    static Read read(Path path, long segmentId) throws IOException {
        byte[] all;
        try {
            all = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            return Read.NONE;
        }
        long whole = all.length - all.length % ENTRY_BYTES;
        if (whole < all.length) {
            try (FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE)) {
                ch.truncate(whole);
                ch.force(false);
            }
        }
        boolean retired = false;
        Map<Long, BlockKey> dead = new HashMap<>();
        int ignored = 0;
        ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        for (int at = 0; at < whole; at += ENTRY_BYTES) {
            byte[] entry = new byte[ENTRY_BYTES];
            b.get(at, entry);
            ByteBuffer e = ByteBuffer.wrap(entry).order(ByteOrder.LITTLE_ENDIAN);
            int magic = e.getInt(0);
            if (e.getInt(4) != crc(entry) || e.getLong(8) != segmentId || magic != TOMBSTONE && magic != RETIRED) {
                ignored++;
                continue;
            }
            if (magic == RETIRED) {
                retired = true;
            } else {
                byte[] key = new byte[BlockKey.BYTES];
                e.get(24, key);
                dead.put(e.getLong(16), BlockKey.of(key));
            }
        }
        return new Read(retired, dead, whole, ignored);
    }

    private static int crc(byte[] entry) {
        CRC32C c = new CRC32C();
        c.update(entry, 8, ENTRY_BYTES - 8);
        return (int) c.getValue();
    }
}
