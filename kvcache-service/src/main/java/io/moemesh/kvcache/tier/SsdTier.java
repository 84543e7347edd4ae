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
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Blocks in append-only segment files on local SSD (the log-structured layout of Mooncake's and LMCache's disk
 * tiers): {@link Segment}s of fixed-size {@link Records} each carrying its own CRC32C, an in-memory index
 * key → (segment, offset) ({@link SsdIndex}) rebuilt by scanning the files at {@link #open}, tombstones
 * ({@link DeadLog}) naming the records it let go of, and {@link #compact()} to reclaim the space of removed and
 * evicted records.
 *
 * <p>Guarantees:
 * <ul>
 *   <li>A put appends its whole record with system calls, forces it as {@link FsyncPolicy} says, and only then
 *       evicts for its room and enters the index: a reader never sees a record that is not completely in the file,
 *       and a put that fails evicts nothing and leaves no record a restart would serve (its record is cut off, the
 *       cut forced before the failure is reported but under NEVER, where sync() or close() forces it; a power loss
 *       before then can bring the record back: {@link ActiveSegment#takeBack}).</li>
 *   <li>Every read verifies the record's CRC32C (and magic, key and length); a mismatch drops the record from the
 *       index, counts a checksum failure and returns empty.</li>
 *   <li>At open, {@link SegmentScan} drops what a crash or a bad disk left (torn tails, bad records, damaged
 *       headers) and refuses another model's segments ({@link SegmentMismatchException}).</li>
 *   <li>A record a {@link #locate} names is never cut off its file (only compaction truncates, only copies it never
 *       committed, and a failed put, only its own record), and a segment that a lease names is not unlinked by
 *       {@link #compact()} before the lease ends, and soon after it is ({@link #releaseExpiredLeases()}): a same-host
 *       reader of the extent finds the record's bytes.</li>
 *   <li>{@link #remove}, eviction and a drop write a tombstone of the record, forced on the fsync policy's schedule
 *       (under ALWAYS a put's evictions before it returns; {@link Tombstones}): a restart serves the blocks the tier
 *       held at its close, not every record still in the files. A promotion ({@link #promoteOut}) writes none until
 *       the block leaves the store or is written anew, so a kill -9 keeps a promoted block too. What a crash's
 *       unforced tombstones let come back is a block the tier had (any copy of a content hash holds the same K/V),
 *       and {@link #open} evicts a surplus oldest record first; a key found twice at open has its earlier copy
 *       tombstoned. Remove frees space; it does not promise erasure (the bytes stay until compaction).</li>
 *   <li>Files are owner-only ({@link OwnerOnly}): segments and tombstones 0600, the directories it creates 0700.</li>
 * </ul>
 *
 * <p>Locks: the index's monitor ({@link SsdIndex}: held briefly, never across I/O); an append lock serialising
 * record writers and forces; a compaction lock; each tombstone file's own ({@link DeadLog}). Reads are positional
 * and run in parallel; a read that races with compaction deleting its segment retries on the record's new location.
 * One tier per directory, across processes: {@link #open} takes its {@link DirectoryLock} until {@link #close()}.
 */
public final class SsdTier implements KvTier {
    private static final Logger log = LoggerFactory.getLogger(SsdTier.class);
    private static final int MAX_READ_ATTEMPTS = 8;

    private final SsdConfig config;
    private final KvLayout layout;
    private final ModelFingerprint fingerprint;
    private final LongSupplier clock;
    private final TierCounters counters = new TierCounters();
    /** Reused read buffers of {@link #get}: read, CRC32C-check and copy out in one pass. */
    private final RecordReader reader = new RecordReader();
    private final SsdIndex index;
    private final ReentrantLock appendLock = new ReentrantLock();
    private final ReentrantLock compactionLock = new ReentrantLock();
    /** {@link #locate}'s leases, and the compacted segments kept for them. */
    private final SegmentLeases leases;
    private final ScheduledExecutorService syncTimer;
    private final OpenReport openReport;
    /** Where puts append, and new segments' ids. */
    private final ActiveSegment active;
    /** When segments are forced, and which have unforced records. */
    private final FsyncSchedule fsync;
    /** Writes the tombstones of the records the index lets go of. */
    private final Tombstones tombstones;
    /** The directory's single-writer lock, until {@link #close()}. */
    private final DirectoryLock dirLock;
    private volatile boolean closed;

    private SsdTier(SsdConfig config, KvLayout layout, ModelFingerprint fingerprint, EvictionPolicy policy,
                    LongSupplier clock, SegmentScan.Result scan, DirectoryLock dirLock,
                    FsyncSchedule.SegmentForce forcer, ActiveSegment.SegmentCut cutter) {
        this.dirLock = dirLock;
        this.config = config;
        this.layout = layout;
        this.fingerprint = fingerprint;
        this.clock = clock;
        this.index = new SsdIndex(policy, clock, counters, config.capacityBytes());
        this.leases = new SegmentLeases(clock, config.directory(), compactionLock);
        this.fsync = new FsyncSchedule(config, appendLock, forcer);
        this.tombstones = new Tombstones(fsync);
        this.active = new ActiveSegment(config, layout, fingerprint, index, fsync, tombstones, scan.nextSegmentId(),
                cutter);
        this.openReport = scan.report();
        counters.checksumFailures.add(scan.report().checksumFailures());
        // Tombstoned on the fsync schedule, so no later restart brings back a key's earlier copy (once its later one
        // is let go of) nor the surplus.
        tombstones.write(scan.superseded());
        tombstones.write(index.load(scan.segments(), scan.index()));
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
        return open(config, layout, fingerprint, policy, clock, Segment::force);
    }

    /** {@link #open(SsdConfig, KvLayout, ModelFingerprint, EvictionPolicy, LongSupplier)} forcing with {@code forcer}. */
    static SsdTier open(SsdConfig config, KvLayout layout, ModelFingerprint fingerprint, EvictionPolicy policy,
                        LongSupplier clock, FsyncSchedule.SegmentForce forcer) {
        return open(config, layout, fingerprint, policy, clock, forcer, Segment::truncateTo);
    }

    /**
     * {@link #open(SsdConfig, KvLayout, ModelFingerprint, EvictionPolicy, LongSupplier)} forcing with {@code forcer}
     * and cutting a failed put's record off with {@code cutter} (tests inject failures).
     */
    static SsdTier open(SsdConfig config, KvLayout layout, ModelFingerprint fingerprint, EvictionPolicy policy,
                        LongSupplier clock, FsyncSchedule.SegmentForce forcer, ActiveSegment.SegmentCut cutter) {
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
            return new SsdTier(config, layout, fingerprint, policy, clock, scan, lock, forcer, cutter);
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
        if (index.touch(key, hint) != null) {
            return PutResult.ALREADY_PRESENT;
        }
        // Encode outside every lock: it is the CPU part (and INT8 may refuse the block).
        ByteBuffer rec = Records.of(block, config.encoding(), layout);
        int crc = Records.storedCrc(rec);
        appendLock.lock();
        try {
            checkOpen();
            // Nothing is evicted before the record is written and forced: a put that fails (a segment that cannot
            // be created, a failed write or force) leaves every other block in place (KvTier: it changed nothing).
            PutResult room = index.roomFor(key, stride, hint);
            if (room != PutResult.STORED) {
                return room;
            }
            Segment seg = active.forRecord(stride);
            long at = -1;
            try {
                at = seg.append(rec); // a failed append cuts its partial record off itself
                fsync.afterAppend(seg, stride);
            } catch (IOException ex) {
                if (at >= 0) {
                    // Written, its force failed: no restart may serve it. Taken back while still active, so
                    // compaction (which skips the active segment) cannot be retiring the segment meanwhile.
                    active.takeBack(seg, at, key);
                }
                active.abandon();
                throw new UncheckedIOException("appending block " + key + " to " + seg.path + " failed", ex);
            }
            // Blocks pinned since roomFor may leave no room: admit takes the record back then (and on a throw).
            PutResult admitted = active.admit(seg, at, key, new IndexEntry(seg, at, crc,
                    BlockHistory.inserted(key, stride, clock.getAsLong(), hint), false));
            if (admitted == PutResult.STORED) {
                counters.bytesWritten.add(stride);
            }
            return admitted;
        } finally {
            appendLock.unlock();
        }
    }

    /**
     * Forces every appended record and tombstone to stable storage now, whatever the policy: every segment with
     * unforced records (sealed ones under NEVER, one left by a failed append), not only the active one.
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

    @Override
    public Optional<KvBlock> get(BlockKey key, AccessHint hint) {
        checkOpen();
        for (int attempt = 0; attempt < MAX_READ_ATTEMPTS; attempt++) {
            IndexEntry e = index.find(key);
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
            index.touchIfCurrent(key, e, hint);
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
        IndexEntry e = index.lease(key, hint, leases, leaseUntilNanos);
        if (e == null) {
            return Optional.empty();
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
     * Unlinks the compacted segments whose lease ended ({@link #locate}), as compaction does before and between its
     * victims and the leases' own sweep soon after a kept victim's lease ends ({@link SegmentLeases#scheduleSweep}).
     *
     * @return files unlinked
     */
    public int releaseExpiredLeases() {
        return leases.releaseExpired();
    }

    /** The leases and the compacted segments kept for them (the compactor retires its victims there). */
    SegmentLeases leases() {
        return leases;
    }

    private void dropCorrupt(BlockKey key, IndexEntry e, String when) {
        dropFailed(key, e);
        log.warn("block {} in {} at offset {} failed its CRC32C check {}: dropped", key, e.segment.path, e.offset,
                when);
    }

    /** Drops a record that failed (if still indexed there) and counts a checksum failure, as a bad read does. */
    private void dropFailed(BlockKey key, IndexEntry e) {
        List<Tombstones.Dead> dead = new ArrayList<>(1);
        try {
            index.dropIfCurrent(key, e, dead);
        } finally {
            tombstones.write(dead); // also when the policy threw: the record is out of the index
        }
        counters.checksumFailures.increment();
    }

    /** Read buffers kept for reuse by {@link #get} (tests: one per concurrent reader, not one per block). */
    int idleReadBuffers() {
        return reader.idleBuffers();
    }

    @Override
    public boolean contains(BlockKey key) {
        return index.contains(key);
    }

    /** Drops the block (pinned or not), or lets go of the record kept since its promotion ({@link #letGo}). */
    @Override
    public boolean remove(BlockKey key) {
        List<Tombstones.Dead> dead = new ArrayList<>(1);
        boolean stored;
        try {
            stored = index.remove(key, dead);
        } finally {
            // Also when the policy's onRemove threw: the block is out of the index, and must stay gone after a restart.
            tombstones.write(dead);
        }
        if (!stored) {
            letGo(key);
        }
        return stored;
    }

    /**
     * Takes the block out of the index and the capacity (the tier above holds it now) and keeps its record
     * untombstoned, so a restart after a kill -9 serves it from there; tombstoned once the block leaves the store
     * ({@link #letGo}, {@link #remove}) or a put of it (its demotion) appends a newer record. Until then it is dead
     * space that compaction does not copy: once its segment is retired the block is only in the tier above.
     */
    @Override
    public boolean promoteOut(BlockKey key) {
        List<Tombstones.Dead> copies = new ArrayList<>(0);
        try {
            return index.promoteOut(key, copies);
        } finally {
            tombstones.write(copies); // also when the policy threw
        }
    }

    /** Tombstones the record kept since the block's {@link #promoteOut}, if any. */
    @Override
    public void letGo(BlockKey key) {
        Tombstones.Dead dead = index.letGo(key);
        if (dead != null) {
            tombstones.write(List.of(dead));
        }
    }

    @Override
    public boolean pin(BlockKey key) {
        return index.pin(key);
    }

    @Override
    public boolean unpin(BlockKey key) {
        return index.unpin(key);
    }

    @Override
    public boolean isPinned(BlockKey key) {
        return index.isPinned(key);
    }

    /** The block's history in this tier, empty when it is not stored. */
    public Optional<BlockHistory> history(BlockKey key) {
        return index.history(key);
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
            leases.scheduleSweep(); // also after a failed run: the victims it retired before may be kept
            compactionLock.unlock();
        }
    }

    // --- for SsdCompactor (same package) ---

    /** {@link SsdIndex#compactionCandidates}, the active segment excluded. */
    List<SsdCompactor.Victim> compactionCandidates() {
        return index.compactionCandidates(active::current, config.compactionLiveFraction());
    }

    SsdIndex index() {
        return index;
    }

    Segment newSegment(PayloadEncoding encoding) throws IOException {
        Segment s = active.create(encoding);
        index.list(s);
        return s;
    }

    /** Unlists and deletes an output of a failed compaction that holds no record the index names. */
    void discard(Segment output) {
        index.unlist(output);
        fsync.forget(List.of(output));
        try {
            output.delete();
        } catch (IOException e) {
            log.warn("deleting {} (an unfinished compaction output) failed; the next open finds it without live "
                    + "records: {}", output.path, e.toString());
        }
    }

    /** {@link SsdIndex#swapIn}, and the retired victim forgotten by the fsync schedule (it needs no force). */
    List<SsdCompactor.Moved> swapIn(List<SsdCompactor.Moved> moved, Segment retired) {
        List<SsdCompactor.Moved> stale = index.swapIn(moved, retired);
        if (retired != null) {
            fsync.forget(List.of(retired)); // outside the index's monitor: it takes the append lock
        }
        return stale;
    }

    /** Whether a copied record is intact; drops it (a checksum failure) when not. */
    boolean verifyOrDrop(BlockKey key, IndexEntry e, ByteBuffer rec) {
        if (key.equals(Records.verify(rec, e.segment.header.encoding().payloadBytes(layout)))) {
            return true;
        }
        dropCorrupt(key, e, "during compaction");
        return false;
    }

    /**
     * Drops a record compaction could not read (an I/O error, a short read): counted as a checksum failure. A get
     * leaves such a block indexed (the error may pass), but compaction cannot leave it behind: its victim would stay,
     * and every later run would fail on it again.
     */
    void dropUnreadable(BlockKey key, IndexEntry e, IOException failure) {
        dropFailed(key, e);
        log.warn("block {} in {} at offset {} could not be read during compaction ({}): dropped", key,
                e.segment.path, e.offset, failure.toString());
    }

    Tombstones tombstones() {
        return tombstones;
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
        return index.usedBytes();
    }

    @Override
    public long blockCount() {
        return index.blockCount();
    }

    /** Bytes of records that are no longer live (removed, evicted, superseded, failed), awaiting compaction. */
    public long deadBytes() {
        return index.deadBytes();
    }

    /** Bytes of all segment files, their tombstone files included. */
    public long diskBytes() {
        return index.diskBytes();
    }

    /** Segment files in use. */
    public int segmentCount() {
        return index.segmentCount();
    }

    /** The segments in use, oldest first (tests). */
    List<Segment> segments() {
        return index.segments();
    }

    @Override
    public TierStats stats() {
        return index.stats();
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
            leases.stopSweeps();
            fsync.forceAll(); // under NEVER too: what close() promises (a restart after a power loss finds it all)
        } catch (IOException e) {
            log.warn("forcing segments in {} at close failed: {}", config.directory(), e.toString());
        } finally {
            index.closeAll(leases);
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
