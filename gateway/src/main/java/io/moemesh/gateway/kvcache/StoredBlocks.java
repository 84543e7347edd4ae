package io.moemesh.gateway.kvcache;

import io.moemesh.model.kv.BlockHash;
import io.moemesh.service.kvcache.KvRecordFormat;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * What {@link WriteBack} remembers of the hashes it queued or stored ({@link WriteBack#memory}), bounded ({@code
 * remembered} hashes, least recently touched forgotten first): queued, stored with the checksums of what it sent
 * (acknowledged {@code STORED}), or stored without (acknowledged {@code ALREADY_PRESENT}, or fetched: another copy may
 * be the one kept). The fetches and the offload read it and feed it evidence ({@link #notStored}, {@link #fetched},
 * {@link #heldOtherBytes}). Thread-safe: every method holds this object's lock, which is also the write-back's one
 * lock (it guards the write-back's queue counts too, so a check here and a queue change there can be one step).
 */
final class StoredBlocks {
    /** What is remembered of a hash: its checksums, or none while queued or when another copy was kept. */
    record Sums(long exact, long int8) {
        static final Sums QUEUED = new Sums(-1, -1);
        static final Sums UNCHECKED = new Sums(-2, -2);

        boolean checked() {
            return exact >= 0;
        }

        /** Whether {@code payload} matches neither the bytes sent nor their int8 round trip (checked sums only). */
        boolean otherThan(byte[] payload) {
            if (!checked()) {
                return false;
            }
            long crc = crc32c(payload);
            return crc != exact && crc != int8;
        }
    }

    /** hash → what is remembered of it. Access order: the least recently used goes first. */
    private final LinkedHashMap<BlockHash, Sums> known;

    StoredBlocks(int remembered) {
        this.known = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<BlockHash, Sums> eldest) {
                return size() > remembered;
            }
        };
    }

    /** Whether {@code hash} is queued or stored, as far as remembered. */
    synchronized boolean knows(BlockHash hash) {
        return known.containsKey(hash);
    }

    /** How many of {@code hashes} are queued or stored, as far as remembered. */
    synchronized int known(List<BlockHash> hashes) {
        int n = 0;
        for (BlockHash h : hashes) {
            n += known.containsKey(h) ? 1 : 0;
        }
        return n;
    }

    /** {@code hash} was queued. */
    synchronized void queued(BlockHash hash) {
        known.put(hash, Sums.QUEUED);
    }

    /** {@code hash} was acknowledged stored, with {@code sums} ({@link Sums#UNCHECKED} when another copy was kept). */
    synchronized void stored(BlockHash hash, Sums sums) {
        known.put(hash, sums);
    }

    /**
     * {@code hash} was fetched from the service, which therefore holds it: remembered stored (not copied or sent back
     * when offered, {@link WriteBack#wants}), without checksums when nothing was remembered of it (whose bytes the
     * service holds is not known); what is remembered is kept (a block this gateway stored keeps its checksums, a
     * queued one stays queued).
     */
    synchronized void fetched(BlockHash hash) {
        if (known.get(hash) == null) {
            known.put(hash, Sums.UNCHECKED);
        }
    }

    /** Whether {@code hash} was acknowledged stored (STORED or ALREADY_PRESENT), as far as remembered. */
    synchronized boolean isStored(BlockHash hash) {
        Sums c = known.get(hash);
        return c != null && c != Sums.QUEUED;
    }

    /** Forgets {@code hash} if it was stored (a queued one is left alone). */
    synchronized void forgetStored(BlockHash hash) {
        if (isStored(hash)) {
            known.remove(hash);
        }
    }

    /**
     * Evidence that the service does not hold {@code hash} (a Pin that found it not stored, a Lookup or Get that
     * stopped at it): forgets that it was stored, and its checksums, so {@link WriteBack#wants} and {@link
     * WriteBack#lacks} say yes again and the block is sent again when next offered. A block still queued or being
     * written is left alone. Not for a block fetched back with other bytes ({@link #heldOtherBytes}): the service
     * holds a copy then, and its checksum must stay so that copy is refused on every fetch.
     */
    synchronized void notStored(BlockHash hash) {
        forgetStored(hash);
    }

    /**
     * Whether {@code payload}, fetched back under {@code hash}, is not what this gateway stored there: the checksums
     * are remembered, and the payload matches neither the bytes sent nor their int8 round trip. False when no
     * checksum is remembered (nothing to compare with).
     */
    boolean heldOtherBytes(BlockHash hash, byte[] payload) {
        Sums c = sums(hash); // the CRC outside the lock, which the engine thread's write-back offers take
        return c != null && c.otherThan(payload);
    }

    /** Forgets {@code hash} if it is still remembered as queued. */
    synchronized void forgetQueued(BlockHash hash) {
        if (known.get(hash) == Sums.QUEUED) {
            known.remove(hash);
        }
    }

    /** What is remembered of {@code hash}, or null. */
    synchronized Sums sums(BlockHash hash) {
        return known.get(hash);
    }

    /**
     * The CRC32C of the payload this gateway stored under {@code hash}, or -1 when none is remembered (never written
     * from here, forgotten, not yet acknowledged, or {@code ALREADY_PRESENT}: another copy was kept).
     */
    synchronized long checksum(BlockHash hash) {
        Sums c = known.get(hash);
        return c == null || !c.checked() ? -1 : c.exact();
    }

    /** The checksums of {@code payload} as sent and after the service's int8 round trip. */
    static Sums sumsOf(KvPayload shape, byte[] payload) {
        return new Sums(crc32c(payload), int8RoundTripCrc(shape, payload));
    }

    /** The CRC32C of {@code payload} after an int8 round trip as the service's int8 SSD storage makes it; -1 when
     * int8 cannot hold it (non-finite values: the service refuses such a block under int8). */
    static long int8RoundTripCrc(KvPayload shape, byte[] payload) {
        int rows = 2 * shape.layers() * shape.kvHeads() * shape.blockTokens();
        ByteBuffer q = ByteBuffer.allocate(KvRecordFormat.int8PayloadBytes(rows, shape.headDim()));
        try {
            KvRecordFormat.encodeInt8(ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer(), rows,
                    shape.headDim(), q);
        } catch (IllegalArgumentException e) {
            return -1;
        }
        byte[] back = new byte[payload.length];
        KvRecordFormat.decodeInt8(q.flip(), rows, shape.headDim(), ByteBuffer.wrap(back));
        return crc32c(back);
    }

    static long crc32c(byte[] payload) {
        CRC32C crc = new CRC32C();
        crc.update(payload);
        return crc.getValue();
    }
}
