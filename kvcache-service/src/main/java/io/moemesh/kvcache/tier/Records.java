package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * The record format of a segment, little-endian:
 * <pre>
 *   0 record magic 0x4B565231 ("KVR1", int32)   4 key (32 bytes)   36 payload length (int32)
 *  40 CRC32C over bytes [4, 40) and the payload (int32)             44 payload
 * </pre>
 * All records of a segment have the same size (the header's layout and encoding fix the payload), so a record
 * whose length field was damaged never makes the scan lose its footing: the next record starts one stride later
 * whatever the bytes say. The CRC covers the key and the length, so a flipped byte anywhere but the magic
 * fails the check, and a damaged magic fails the magic test. A record counts as committed only when all its bytes
 * are in the file and its CRC matches.
 */
final class Records {
    static final int MAGIC = 0x4B565231;
    static final int HEADER_BYTES = 44;
    private static final int CRC_AT = 40;

    private Records() {
    }

    /** Starts a record: writes the header fields except the CRC and positions {@code rec} at the payload. */
    static void begin(ByteBuffer rec, BlockKey key, int payloadBytes) {
        rec.order(ByteOrder.LITTLE_ENDIAN);
        rec.putInt(0, MAGIC);
        rec.position(4);
        key.writeTo(rec);
        rec.putInt(payloadBytes);
        rec.position(HEADER_BYTES);
    }

    /** Fills in the CRC after the payload was written; leaves {@code rec} flipped for writing to a file. */
    static void seal(ByteBuffer rec) {
        rec.putInt(CRC_AT, crc(rec));
        rec.position(0);
    }

    private static int crc(ByteBuffer rec) {
        CRC32C c = new CRC32C();
        c.update(rec.duplicate().position(4).limit(CRC_AT));
        c.update(rec.duplicate().position(HEADER_BYTES).limit(rec.capacity()));
        return (int) c.getValue();
    }

    /**
     * The key of an intact record of {@code payloadBytes}, or null when the magic, the length or the CRC does not
     * match ({@code rec} holds exactly one record, position 0).
     */
    static BlockKey verify(ByteBuffer rec, int payloadBytes) {
        rec.order(ByteOrder.LITTLE_ENDIAN);
        if (rec.capacity() != HEADER_BYTES + payloadBytes || rec.getInt(0) != MAGIC
                || rec.getInt(36) != payloadBytes || rec.getInt(CRC_AT) != crc(rec)) {
            return null;
        }
        return BlockKey.read(rec.duplicate().position(4));
    }

    /** Bytes CRC-checked and then copied per step of {@link #verifyInto}: stays in L1/L2 between the two. */
    static final int VERIFY_STEP_BYTES = 64 * 1024;

    /**
     * As {@link #verify} for a record read into a reused buffer ({@code rec}'s bytes 0 to its limit), copying the
     * payload into {@code payloadOut} in the same pass: each step is CRC32C-checked and then copied while it is
     * still in the core's cache, instead of a copy of the whole record followed by a CRC over the copy.
     *
     * @return the record's key, or null when the magic, the length or the CRC does not match ({@code payloadOut}
     *         then holds garbage and must not be used)
     */
    static BlockKey verifyInto(ByteBuffer rec, int payloadBytes, byte[] payloadOut) {
        rec.order(ByteOrder.LITTLE_ENDIAN);
        if (rec.limit() != HEADER_BYTES + payloadBytes || payloadOut.length != payloadBytes
                || rec.getInt(0) != MAGIC || rec.getInt(36) != payloadBytes) {
            return null;
        }
        CRC32C c = new CRC32C();
        c.update(rec.duplicate().position(4).limit(CRC_AT));
        for (int at = HEADER_BYTES; at < rec.limit(); at += VERIFY_STEP_BYTES) {
            int n = Math.min(VERIFY_STEP_BYTES, rec.limit() - at);
            c.update(rec.duplicate().position(at).limit(at + n));
            rec.get(at, payloadOut, at - HEADER_BYTES, n);
        }
        if (rec.getInt(CRC_AT) != (int) c.getValue()) {
            return null;
        }
        return BlockKey.read(rec.duplicate().position(4));
    }

    /** The payload of a verified record: a view, no copy. */
    static ByteBuffer payload(ByteBuffer rec) {
        return rec.duplicate().position(HEADER_BYTES).slice().order(ByteOrder.LITTLE_ENDIAN);
    }
}
