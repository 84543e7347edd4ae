package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.kvcache.policy.AccessHint;
import io.moemesh.kvcache.policy.BlockHistory;
import io.moemesh.kvcache.policy.EvictionPolicy;
import io.moemesh.model.kv.ModelFingerprint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Blocks in append-only segment files on local SSD (the log-structured layout of Mooncake's and LMCache's disk
 * tiers): {@link Segment}s of fixed-size {@link Records} each carrying its own CRC32C, an in-memory index
 * key → (segment, offset) rebuilt by scanning the files at {@link #open}, and {@link #compact()} to reclaim the
 * space of removed and evicted records.
 *
 * <p>Guarantees:
 * <ul>
 *   <li>A put appends its whole record with system calls, forces it as {@link FsyncPolicy} says, and only then
 *       enters the index: a reader never sees a record that is not completely in the file.</li>
 *   <li>Every read verifies the record's CRC32C (and magic, key and length); a mismatch drops the record from the
 *       index, counts a checksum failure and returns empty.</li>
 *   <li>At open, {@link SegmentScan} drops what a crash or a bad disk left (torn tails, bad records, damaged
 *       headers) and refuses another model's segments ({@link SegmentMismatchException}).</li>
 *   <li>A segment file is never truncated after {@link #open}, and one that a {@link #locate} lease names is not
 *       unlinked by {@link #compact()} before the lease ends ({@link #releaseExpiredLeases()}): a same-host reader of
 *       the extent finds the record's bytes.</li>
 *   <li>{@link #remove} and eviction are not logged: a removed block can reappear after a restart, which is
 *       correct as keys are content hashes (any copy holds the same K/V); remove frees space, not erasure.</li>
 * </ul>
 *
 * <p>Locks: one metadata monitor for the index, the policy and the byte counts (held briefly, never across I/O);
 * an append lock serialising writers; a compaction lock. Reads are positional and run in parallel; a read that
 * races with compaction deleting its segment retries on the record's new location. One tier per directory, across
 * processes: {@link #open} takes its {@link DirectoryLock} until {@link #close()}.
 */
public final class SsdTier implements KvTier {
    private static final Logger log = LoggerFactory.getLogger(SsdTier.class);
    private static final int MAX_READ_ATTEMPTS = 8;

    private final SsdConfig config;
    private final KvLayout layout;
    private final ModelFingerprint fingerprint;
    private final EvictionPolicy policy;
    private final LongSupplier clock;
    private final TierCounters counters = new TierCounters();
    /** Reused read buffers of {@link #get}: read, CRC32C-check and copy out in one pass. */
    private final RecordReader reader = new RecordReader();
    private final Object meta = new Object();
    private final Map<BlockKey, IndexEntry> index = new HashMap<>();
    private final TreeMap<Long, Segment> segments = new TreeMap<>();
    private final ReentrantLock appendLock = new ReentrantLock();
    private final ReentrantLock compactionLock = new ReentrantLock();
    /** {@link #locate}'s leases, and the compacted segments kept for them. */
    private final SegmentLeases leases;
    private final AtomicLong nextSegmentId;
    private final ScheduledExecutorService syncTimer;
    private final OpenReport openReport;
    private long usedBytes;
    private long pinnedBytes;
    private volatile Segment active;
    /** When segments are forced, and which have unforced records. */
    private final FsyncSchedule fsync;
    /** The directory's single-writer lock, until {@link #close()}. */
    private final DirectoryLock dirLock;
    private volatile boolean closed;

    private SsdTier(SsdConfig config, KvLayout layout, ModelFingerprint fingerprint, EvictionPolicy policy,
                    LongSupplier clock, SegmentScan.Result scan, DirectoryLock dirLock) {
        this.dirLock = dirLock;
        this.config = config;
        this.layout = layout;
        this.fingerprint = fingerprint;
        this.policy = policy;
        this.clock = clock;
        this.leases = new SegmentLeases(clock);
        this.fsync = new FsyncSchedule(config, appendLock);
        for (Segment s : scan.segments()) {
            segments.put(s.id, s);
        }
        this.nextSegmentId = new AtomicLong(scan.nextSegmentId());
        this.openReport = scan.report();
        counters.checksumFailures.add(scan.report().checksumFailures());
        long now = clock.getAsLong();
        scan.index().forEach((key, e) -> {
            index.put(key, e);
            e.history = BlockHistory.inserted(key, e.segment.recordBytes, now, AccessHint.NONE);
            usedBytes += e.segment.recordBytes;
            policy.onInsert(e.history);
        });
        synchronized (meta) {
            // A smaller capacity than last time: evict down to it (no block is pinned yet).
            while (usedBytes > config.capacityBytes()) {
                evictOne();
            }
        }
        syncTimer = fsync.startTimer(() -> closed);
    }

    /**
     * Opens (or creates) the tier in {@code config.directory()}, rebuilding the index from the segment files.
     *
     * @param fingerprint the model whose blocks this tier stores; segments of another are refused
     * @param policy      eviction order when the capacity is reached (a fresh instance per tier)
     * @param clock       the time {@link BlockHistory} records
     * @throws SegmentMismatchException    when an intact segment belongs to another model, layout or format version
     * @throws SsdDirectoryLockedException when another open tier has the directory ({@link DirectoryLock})
     * @throws UncheckedIOException        when the directory cannot be read or written
     */
    public static SsdTier open(SsdConfig config, KvLayout layout, ModelFingerprint fingerprint,
                               EvictionPolicy policy, LongSupplier clock) {
        Objects.requireNonNull(layout, "layout");
        Objects.requireNonNull(fingerprint, "fingerprint");
        if (config.capacityBytes() < config.encoding().recordBytes(layout)) {
            throw new IllegalArgumentException("SSD capacityBytes " + config.capacityBytes()
                    + " cannot hold one record of " + config.encoding().recordBytes(layout) + " bytes");
        }
        Objects.requireNonNull(policy, "policy");
        Objects.requireNonNull(clock, "clock");
        // Locked before the scan: the rebuild itself writes (it deletes *.tmp files and truncates torn tails).
        DirectoryLock lock = DirectoryLock.acquire(config.directory());
        try {
            SegmentScan.Result scan = SegmentScan.scan(config.directory(), layout, fingerprint);
            return new SsdTier(config, layout, fingerprint, policy, clock, scan, lock);
        } catch (RuntimeException | Error e) {
            lock.close();
            throw e;
        }
    }

    /** {@link #open(SsdConfig, KvLayout, ModelFingerprint, EvictionPolicy, LongSupplier)} with the system clock. */
    public static SsdTier open(SsdConfig config, KvLayout layout, ModelFingerprint fingerprint,
                               EvictionPolicy policy) {
        return open(config, layout, fingerprint, policy, System::nanoTime);
    }

    /** What the index rebuild at open found. */
    public OpenReport openReport() {
        return openReport;
    }

    public SsdConfig config() {
        return config;
    }

    public ModelFingerprint fingerprint() {
        return fingerprint;
    }

    @Override
    public TierKind kind() {
        return TierKind.SSD;
    }

    @Override
    public KvLayout layout() {
        return layout;
    }

    /** Bytes a block occupies in new segments (record header + encoded payload). */
    public int recordBytes() {
        return config.encoding().recordBytes(layout);
    }

    @Override
    public void checkStorable(KvBlock block) {
        config.encoding().checkStorable(block);
    }

    @Override
    public PutResult put(KvBlock block, AccessHint hint) {
        checkOpen();
        int stride = recordBytes();
        // open() checked that one record fits the capacity, so a block of the right layout is never oversize.
        Tiers.checkBlock(block, layout, Long.MAX_VALUE, "SSD tier");
        BlockKey key = block.key();
        synchronized (meta) {
            IndexEntry e = index.get(key);
            if (e != null) {
                touch(e, hint);
                return PutResult.ALREADY_PRESENT;
            }
        }
        // Encode outside every lock: it is the CPU part (and INT8 may refuse the block).
        ByteBuffer rec = Records.of(block, config.encoding(), layout);
        int crc = Records.storedCrc(rec);
        appendLock.lock();
        try {
            checkOpen();
            synchronized (meta) {
                IndexEntry e = index.get(key);
                if (e != null) {
                    touch(e, hint);
                    return PutResult.ALREADY_PRESENT;
                }
                if (pinnedBytes + stride > config.capacityBytes()) {
                    return PutResult.NO_SPACE;
                }
                while (usedBytes + stride > config.capacityBytes()) {
                    evictOne();
                }
            }
            Segment seg = activeFor(stride);
            long at;
            try {
                at = seg.append(rec);
                fsync.afterAppend(seg, stride);
            } catch (IOException ex) {
                // Its tail is suspect: go on in a fresh segment. Its acknowledged records stay in fsync's
                // unforced set (the timer, sync() and close() force it).
                active = null;
                throw new UncheckedIOException("appending block " + key + " to " + seg.path + " failed", ex);
            }
            synchronized (meta) {
                IndexEntry e = new IndexEntry(seg, at, crc, BlockHistory.inserted(key, stride, clock.getAsLong(), hint),
                        false);
                index.put(key, e);
                usedBytes += stride;
                seg.liveBytes += stride;
                policy.onInsert(e.history);
            }
            counters.bytesWritten.add(stride);
            return PutResult.STORED;
        } finally {
            appendLock.unlock();
        }
    }

    /** The segment to append a record of {@code stride} bytes to: the active one, or a new one past the size. */
    private Segment activeFor(int stride) {
        Segment seg = active;
        if (seg != null && seg.header.encoding() == config.encoding()
                && (seg.size() + stride <= config.segmentBytes() || seg.recordArea() == 0)) {
            return seg;
        }
        try {
            if (seg != null && config.fsync() != FsyncPolicy.NEVER) {
                // Sealing forces what INTERVAL has not yet (NEVER: sync() does).
                fsync.force(seg);
            }
            Segment next = createSegment(config.encoding());
            // Active before it is listed: compaction, which skips the active segment, must never see it as a
            // sealed empty segment and delete it under this put.
            active = next;
            return listed(next);
        } catch (IOException e) {
            throw new UncheckedIOException("starting a segment in " + config.directory() + " failed", e);
        }
    }

    /**
     * Forces every appended record to stable storage now, whatever the policy: every segment with unforced records
     * (sealed ones under NEVER, one left by a failed append), not only the active one.
     */
    public void sync() {
        fsync.sync();
    }

    /**
     * Record bytes not yet forced, in all segments (0 right after a put under ALWAYS; under INTERVAL 0 again
     * within about {@code fsyncInterval} without further puts, by the timer).
     */
    public long unsyncedBytes() {
        return fsync.unsyncedBytes();
    }

    /** Under {@code meta}. */
    private void evictOne() {
        BlockKey victim = policy.victim(k -> !index.get(k).pinned).orElseThrow(() -> new IllegalStateException(
                "eviction policy found no unpinned block while " + (usedBytes - pinnedBytes)
                        + " unpinned bytes are resident"));
        drop(victim, index.get(victim));
        counters.evictions.increment();
    }

    /** Under {@code meta}: the record becomes dead space. */
    private void drop(BlockKey key, IndexEntry e) {
        index.remove(key);
        int stride = e.segment.recordBytes;
        usedBytes -= stride;
        e.segment.liveBytes -= stride;
        e.segment.deadBytes += stride;
        if (e.pinned) {
            pinnedBytes -= stride;
        }
        policy.onRemove(key);
    }

    /** Under {@code meta}. */
    private void touch(IndexEntry e, AccessHint hint) {
        e.history = e.history.accessed(clock.getAsLong(), hint);
        policy.onAccess(e.history);
    }

    @Override
    public Optional<KvBlock> get(BlockKey key, AccessHint hint) {
        checkOpen();
        for (int attempt = 0; attempt < MAX_READ_ATTEMPTS; attempt++) {
            IndexEntry e;
            synchronized (meta) {
                e = index.get(key);
            }
            if (e == null) {
                break;
            }
            RecordReader.Read rec;
            try {
                rec = reader.read(e.segment, e.offset, e.segment.header.encoding().payloadBytes(layout));
            } catch (ClosedChannelException closedUnderUs) {
                checkOpen();
                continue; // compaction moved the record and closed its old segment: look it up again
            } catch (IOException ex) {
                log.warn("reading block {} from {} failed: {}", key, e.segment.path, ex.toString());
                break;
            }
            if (!key.equals(rec.key())) {
                dropCorrupt(key, e, "on read");
                break;
            }
            synchronized (meta) {
                if (index.get(key) == e) {
                    touch(e, hint);
                }
            }
            counters.hits.increment();
            counters.bytesRead.add(e.segment.recordBytes);
            return Optional.of(e.segment.header.encoding().decode(key, layout, rec.payload()));
        }
        counters.misses.increment();
        return Optional.empty();
    }

    /**
     * Where the block's record lies, for a same-host reader ({@code Locate}), its segment leased until {@code
     * leaseUntilNanos} (this tier's clock; {@link SegmentLeases}). Counts a hit, the record's bytes and the access,
     * as a {@link #get} would. Empty, with nothing counted, when the block is not stored.
     */
    @Override
    public Optional<RecordExtent> locate(BlockKey key, AccessHint hint, long leaseUntilNanos) {
        checkOpen();
        IndexEntry e;
        synchronized (meta) {
            e = index.get(key);
            if (e == null) {
                return Optional.empty();
            }
            leases.lease(e.segment.id, leaseUntilNanos); // under meta: compaction's swap-in cannot come between
            touch(e, hint);
        }
        counters.hits.increment();
        counters.bytesRead.add(e.segment.recordBytes);
        return Optional.of(new RecordExtent(e.segment.path.toAbsolutePath(), e.offset, e.segment.recordBytes, e.crc,
                e.segment.header.encoding()));
    }

    /** This tier's clock (ns), as {@link #locate}'s lease ends are measured. */
    public long now() {
        return clock.getAsLong();
    }

    /**
     * Unlinks the compacted segments whose lease ended ({@link #locate}); {@link #compact()} calls it first.
     *
     * @return files unlinked
     */
    public int releaseExpiredLeases() {
        return leases.releaseExpired(config.directory());
    }

    /** The leases and the compacted segments kept for them (the compactor retires its victims there). */
    SegmentLeases leases() {
        return leases;
    }

    private void dropCorrupt(BlockKey key, IndexEntry e, String when) {
        synchronized (meta) {
            if (index.get(key) == e) {
                drop(key, e);
            }
        }
        counters.checksumFailures.increment();
        log.warn("block {} in {} at offset {} failed its CRC32C check {}: dropped", key, e.segment.path, e.offset,
                when);
    }

    /** Read buffers kept for reuse by {@link #get} (tests: one per concurrent reader, not one per block). */
    int idleReadBuffers() {
        return reader.idleBuffers();
    }

    @Override
    public boolean contains(BlockKey key) {
        synchronized (meta) {
            return index.containsKey(key);
        }
    }

    @Override
    public boolean remove(BlockKey key) {
        synchronized (meta) {
            IndexEntry e = index.get(key);
            if (e == null) {
                return false;
            }
            drop(key, e);
            return true;
        }
    }

    @Override
    public boolean pin(BlockKey key) {
        synchronized (meta) {
            IndexEntry e = index.get(key);
            if (e == null) {
                return false;
            }
            if (!e.pinned) {
                e.pinned = true;
                pinnedBytes += e.segment.recordBytes;
            }
            return true;
        }
    }

    @Override
    public boolean unpin(BlockKey key) {
        synchronized (meta) {
            IndexEntry e = index.get(key);
            if (e == null || !e.pinned) {
                return false;
            }
            e.pinned = false;
            pinnedBytes -= e.segment.recordBytes;
            return true;
        }
    }

    @Override
    public boolean isPinned(BlockKey key) {
        synchronized (meta) {
            IndexEntry e = index.get(key);
            return e != null && e.pinned;
        }
    }

    /** The block's history in this tier, empty when it is not stored. */
    public Optional<BlockHistory> history(BlockKey key) {
        synchronized (meta) {
            IndexEntry e = index.get(key);
            return e == null ? Optional.empty() : Optional.of(e.history);
        }
    }

    /** Rewrites the sealed segments below {@code compactionLiveFraction} live, one run at a time: SsdCompactor. */
    public CompactionResult compact() {
        return compact(() -> false);
    }

    /**
     * {@link #compact()}, ending early once {@code stopRequested} (checked before each record): a half-copied victim
     * keeps its other records indexed. How a shutdown stops it (never by an interrupt).
     */
    public CompactionResult compact(BooleanSupplier stopRequested) {
        compactionLock.lock();
        try {
            checkOpen();
            releaseExpiredLeases();
            return SsdCompactor.run(this, stopRequested);
        } finally {
            compactionLock.unlock();
        }
    }

    // --- for SsdCompactor (same package) ---

    /** Sealed segments at or below the live fraction, with the live entries in each; under {@code meta}. */
    Map<Segment, List<Map.Entry<BlockKey, IndexEntry>>> compactionCandidates() {
        synchronized (meta) {
            Segment act = active;
            Map<Segment, List<Map.Entry<BlockKey, IndexEntry>>> out = new HashMap<>();
            for (Segment s : segments.values()) {
                long area = s.recordArea();
                if (s != act && (area == 0 || s.liveBytes < config.compactionLiveFraction() * area)) {
                    out.put(s, new ArrayList<>());
                }
            }
            for (Map.Entry<BlockKey, IndexEntry> e : index.entrySet()) {
                List<Map.Entry<BlockKey, IndexEntry>> l = out.get(e.getValue().segment);
                if (l != null) {
                    l.add(Map.entry(e.getKey(), e.getValue()));
                }
            }
            return out;
        }
    }

    Segment newSegment(PayloadEncoding encoding) throws IOException {
        return listed(createSegment(encoding));
    }

    private Segment createSegment(PayloadEncoding encoding) throws IOException {
        return Segment.create(config.directory(),
                SegmentHeader.of(layout, encoding, fingerprint, nextSegmentId.getAndIncrement()));
    }

    private Segment listed(Segment s) {
        synchronized (meta) {
            segments.put(s.id, s);
        }
        return s;
    }

    /** Moves an entry to its copy if it still points at the old record, and retires the victims; one step. */
    void swapIn(List<SsdCompactor.Moved> moved, List<Segment> victims) {
        synchronized (meta) {
            for (SsdCompactor.Moved m : moved) {
                int stride = m.to().recordBytes;
                if (index.get(m.key()) == m.from()) {
                    index.put(m.key(), m.from().movedTo(m.to(), m.offset()));
                    m.to().liveBytes += stride;
                    m.from().segment.liveBytes -= stride; // a half-copied victim stays
                    m.from().segment.deadBytes += stride;
                } else {
                    m.to().deadBytes += stride;
                }
            }
            for (Segment v : victims) {
                segments.remove(v.id);
            }
        }
        fsync.forget(victims); // outside meta: it takes the append lock
    }

    void verifyOrDrop(BlockKey key, IndexEntry e, ByteBuffer rec, Runnable onGood) {
        if (key.equals(Records.verify(rec, e.segment.header.encoding().payloadBytes(layout)))) {
            onGood.run();
        } else {
            dropCorrupt(key, e, "during compaction");
        }
    }

    void countWritten(long bytes) {
        counters.bytesWritten.add(bytes);
    }

    // --- accounting ---

    @Override
    public long capacityBytes() {
        return config.capacityBytes();
    }

    @Override
    public long usedBytes() {
        synchronized (meta) {
            return usedBytes;
        }
    }

    @Override
    public long blockCount() {
        synchronized (meta) {
            return index.size();
        }
    }

    /** Bytes of records that are no longer live (removed, evicted, superseded, failed), awaiting compaction. */
    public long deadBytes() {
        synchronized (meta) {
            return segments.values().stream().mapToLong(s -> s.deadBytes).sum();
        }
    }

    /** Bytes of all segment files. */
    public long diskBytes() {
        synchronized (meta) {
            return segments.values().stream().mapToLong(Segment::size).sum();
        }
    }

    /** Segment files in use. */
    public int segmentCount() {
        synchronized (meta) {
            return segments.size();
        }
    }

    /** The segments in use, oldest first (tests). */
    List<Segment> segments() {
        synchronized (meta) {
            return List.copyOf(segments.values());
        }
    }

    @Override
    public TierStats stats() {
        synchronized (meta) {
            return counters.snapshot(index.size(), usedBytes, config.capacityBytes());
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        if (syncTimer != null) {
            syncTimer.shutdownNow();
        }
        compactionLock.lock();
        appendLock.lock();
        try {
            closed = true;
            if (config.fsync() != FsyncPolicy.NEVER) {
                fsync.forceAll();
            }
        } catch (IOException e) {
            log.warn("forcing segments in {} at close failed: {}", config.directory(), e.toString());
        } finally {
            synchronized (meta) {
                segments.values().forEach(Segment::close);
                leases.closeKept();
            }
            // Last: the next opener of the directory (a restart) must find every segment closed and forced.
            dirLock.close();
            appendLock.unlock();
            compactionLock.unlock();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the SSD tier in " + config.directory() + " is closed");
        }
    }
}
