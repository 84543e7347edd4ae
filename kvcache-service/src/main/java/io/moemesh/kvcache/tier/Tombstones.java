package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import java.io.IOException;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes the tombstones ({@link DeadLog}) of the records an {@link SsdTier} lets go of (evicted, removed, dropped for
 * a failed check or an unreadable read, copies compaction no longer needs, or made of a block let go of before their
 * swap-in, a failed put's record it could not cut off, superseded: the earlier copy of a key found twice at open, a
 * promoted block's kept record): outside the tier's index monitor, as
 * they are I/O, and without its append lock (a remove must not wait behind a put's or the timer's force); each
 * {@link DeadLog} serialises its own appends. A tombstone for a segment compaction already retired is skipped (its
 * file is going; the retired mark covers all its records).
 */
final class Tombstones {
    private static final Logger log = LoggerFactory.getLogger(Tombstones.class);

    /** A record that is no longer live: where it is, and its key. */
    record Dead(Segment segment, long offset, BlockKey key) {
    }

    private final FsyncSchedule fsync;

    Tombstones(FsyncSchedule fsync) {
        this.fsync = fsync;
    }

    /**
     * Appends a tombstone for each, forced on the records' schedule: with the next forced record (ALWAYS: the next
     * put), by INTERVAL's timer, by {@code sync()} and {@code close()}. A failure is logged, not thrown: the eviction
     * or removal has happened; after a restart the record comes back, a block the tier had let go of (its bytes still
     * the block's), which the open's eviction takes again when it leaves the tier over capacity.
     */
    void write(Collection<Dead> dead) {
        if (dead.isEmpty()) {
            return;
        }
        for (Dead d : dead) {
            try {
                if (d.segment().deadLog().append(d.offset(), d.key())) {
                    fsync.afterTombstone(d.segment());
                }
            } catch (IOException e) {
                log.warn("writing the tombstone of block {} ({} at offset {}) failed: it may come back after a "
                        + "restart: {}", d.key(), d.segment().path, d.offset(), e.toString());
            }
        }
    }

    /**
     * {@link #write}, then forces every tombstone file with unforced entries now (ALWAYS: an eviction's tombstones are
     * durable before the put that evicted returns). A failed force is logged, not thrown, as a failed write is: the
     * files stay noted and the next force tries them again.
     */
    void writeNow(Collection<Dead> dead) {
        if (dead.isEmpty()) {
            return;
        }
        write(dead);
        try {
            fsync.forceTombstones();
        } catch (IOException e) {
            log.warn("forcing tombstones failed (tried again at the next force): the blocks they name may come back "
                    + "after a power loss: {}", e.toString());
        }
    }

    /**
     * Appends a tombstone for each and forces them now, whatever the policy: compaction's, durable before the index
     * moves to the copies.
     *
     * @throws IOException the first failure (tombstones appended before it may stay: they name records that are
     *                     copied, so a restart serves the copies)
     */
    void writeForced(Collection<Dead> dead) throws IOException {
        Set<Segment> touched = new LinkedHashSet<>();
        for (Dead d : dead) {
            if (d.segment().deadLog().append(d.offset(), d.key())) {
                touched.add(d.segment());
            }
        }
        for (Segment s : touched) {
            s.deadLog().force();
        }
    }

    /** Marks {@code victim} retired (the next open deletes it, whatever it holds) and forces the mark. */
    void markRetired(Segment victim) throws IOException {
        if (victim.deadLog().appendRetired()) {
            victim.deadLog().force();
        }
    }
}
