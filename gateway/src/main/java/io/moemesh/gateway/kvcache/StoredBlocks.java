package io.moemesh.gateway.kvcache;

import io.moemesh.model.kv.BlockHash;
import io.moemesh.service.kvcache.KvRecordFormat;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * What {@link WriteBack} remembers of the hashes it queued or stored, bounded ({@code remembered} hashes, least
 * recently touched forgotten first): queued, stored with the checksums of what it sent (acknowledged {@code STORED}),
 * or stored without (acknowledged {@code ALREADY_PRESENT}: another copy was kept). Not thread-safe: the write-back
 * guards it with its one lock, which is this object (it also guards the write-back's queue counts).
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
    boolean knows(BlockHash hash) {
        return known.containsKey(hash);
    }

    /** {@code hash} was queued. */
    void queued(BlockHash hash) {
        known.put(hash, Sums.QUEUED);
    }

    /** {@code hash} was acknowledged stored, with {@code sums} ({@link Sums#UNCHECKED} when another copy was kept). */
    void stored(BlockHash hash, Sums sums) {
        known.put(hash, sums);
    }

    /**
     * {@code hash} was fetched from the service, which therefore holds it: remembered stored, without checksums when
     * nothing was remembered of it (whose bytes the service holds is not known); what is remembered is kept (a block
     * this gateway stored keeps its checksums, a queued one stays queued).
     */
    void fetched(BlockHash hash) {
        if (known.get(hash) == null) {
            known.put(hash, Sums.UNCHECKED);
        }
    }

    /** Whether {@code hash} was acknowledged stored (STORED or ALREADY_PRESENT), as far as remembered. */
    boolean isStored(BlockHash hash) {
        Sums c = known.get(hash);
        return c != null && c != Sums.QUEUED;
    }

    /** Forgets {@code hash} if it was stored (a queued one is left alone). */
    void forgetStored(BlockHash hash) {
        if (isStored(hash)) {
            known.remove(hash);
        }
    }

    /** Forgets {@code hash} if it is still remembered as queued. */
    void forgetQueued(BlockHash hash) {
        if (known.get(hash) == Sums.QUEUED) {
            known.remove(hash);
        }
    }

    /** What is remembered of {@code hash}, or null. */
    Sums sums(BlockHash hash) {
        return known.get(hash);
    }

    /** The CRC32C of the payload stored under {@code hash}, or -1 when none is remembered. */
    long checksum(BlockHash hash) {
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
