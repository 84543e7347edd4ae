package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.service.kvcache.KvRecordFormat;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The record format of a segment, with this service's {@link BlockKey}s: the format itself (its layout, its CRC32C
 * coverage, the checks) is defined once, in service-common's {@link KvRecordFormat}, which a same-host client that
 * reads the segment files after {@code Locate} uses too. All records of a segment have the same size (the header's
 * layout and encoding fix the payload), so a record whose length field was damaged never makes the scan lose its
 * footing: the next record starts one stride later whatever the bytes say. A record counts as committed only when
 * all its bytes are in the file and its CRC matches.
 */
final class Records {
    static final int MAGIC = KvRecordFormat.MAGIC;
    static final int HEADER_BYTES = KvRecordFormat.HEADER_BYTES;
    /** Bytes CRC-checked and then copied per step of {@link #verifyInto}: stays in L1/L2 between the two. */
    static final int VERIFY_STEP_BYTES = KvRecordFormat.VERIFY_STEP_BYTES;

    private Records() {
    }

    /**
     * The whole record of {@code block} in {@code encoding}, CRC filled in, flipped for writing to a file (INT8 may
     * refuse the block: {@link PayloadEncoding#encode}).
     */
    static ByteBuffer of(KvBlock block, PayloadEncoding encoding, KvLayout layout) {
        ByteBuffer rec = ByteBuffer.allocate(encoding.recordBytes(layout));
        begin(rec, block.key(), encoding.payloadBytes(layout));
        encoding.encode(block, rec);
        seal(rec);
        return rec;
    }

    /** Starts a record: writes the header fields except the CRC and positions {@code rec} at the payload. */
    static void begin(ByteBuffer rec, BlockKey key, int payloadBytes) {
        KvRecordFormat.begin(rec, key.bytes(), payloadBytes);
    }

    /** Fills in the CRC after the payload was written; leaves {@code rec} flipped for writing to a file. */
    static void seal(ByteBuffer rec) {
        KvRecordFormat.seal(rec);
    }

    /** The CRC32C a record's header holds (the index keeps it for {@code Locate}). */
    static int storedCrc(ByteBuffer rec) {
        return KvRecordFormat.storedCrc(rec);
    }

    /**
     * The key of an intact record of {@code payloadBytes}, or null when the magic, the length or the CRC does not
     * match ({@code rec} holds exactly one record, position 0).
     */
    static BlockKey verify(ByteBuffer rec, int payloadBytes) {
        if (rec.capacity() != rec.limit() || !KvRecordFormat.verify(rec, payloadBytes)) {
            return null;
        }
        return BlockKey.of(KvRecordFormat.key(rec));
    }

    /**
     * As {@link #verify} for a record read into a reused buffer ({@code rec}'s bytes 0 to its limit), copying the
     * payload into {@code payloadOut} in the same pass ({@link KvRecordFormat#verifyInto}).
     *
     * @return the record's key, or null when the magic, the length or the CRC does not match ({@code payloadOut}
     *         then holds garbage and must not be used)
     */
    static BlockKey verifyInto(ByteBuffer rec, int payloadBytes, byte[] payloadOut) {
        if (!KvRecordFormat.verifyInto(rec, payloadBytes, payloadOut)) {
            return null;
        }
        return BlockKey.of(KvRecordFormat.key(rec));
    }

    /** The payload of a verified record: a view, no copy. */
    static ByteBuffer payload(ByteBuffer rec) {
        return rec.duplicate().position(HEADER_BYTES).slice().order(ByteOrder.LITTLE_ENDIAN);
    }
}
