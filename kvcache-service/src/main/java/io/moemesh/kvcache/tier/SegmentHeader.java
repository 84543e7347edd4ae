package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.model.kv.ModelFingerprint;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * The first {@value #BYTES} bytes of every segment file, little-endian:
 * <pre>
 *   0  magic "MMKVSEG1" (8 bytes)      8  format version (int32)     12 header bytes (int32, 128)
 *  16  layout id (int64)               24 layers, kvHeads, headDim, blockTokens (4 × int32)
 *  40  payload encoding code (int32)   44 model fingerprint (32 bytes)
 *  76  segment id (int64)              84 zeros ...                 124 CRC32C of bytes [0, 124) (int32)
 * </pre>
 * The layout's fields are written next to its id so that a refusal can say what the file holds.
 *
 * @param formatVersion {@link #FORMAT_VERSION} when written by this code, down to {@link #OLDEST_READABLE_VERSION}
 *                      when read
 */
record SegmentHeader(int formatVersion, KvLayout layout, long layoutId, PayloadEncoding encoding,
                     ModelFingerprint fingerprint, long segmentId) {
    static final int BYTES = 128;
    /**
     * Version of the segment format this code writes: 2, a segment whose dead records are named by its tombstone file
     * ({@link DeadLog}). A build that predates tombstones refuses it (it would serve what the tier had evicted).
     */
    static final int FORMAT_VERSION = 2;
    /**
     * Oldest version this code reads: version 1 has the same header and records and no tombstone file (every intact
     * record counts as live, as that build wrote them). Tombstones written for a version-1 segment's records are
     * honoured.
     */
    static final int OLDEST_READABLE_VERSION = 1;
    /** The first bytes of every segment file (OrphanedStores tells a store's segments by them too). */
    static final byte[] MAGIC = "MMKVSEG1".getBytes(StandardCharsets.US_ASCII);
    private static final int CRC_AT = BYTES - 4;

    static SegmentHeader of(KvLayout layout, PayloadEncoding encoding, ModelFingerprint fingerprint, long id) {
        return new SegmentHeader(FORMAT_VERSION, layout, layout.id(), encoding, fingerprint, id);
    }

    ByteBuffer encode() {
        ByteBuffer b = ByteBuffer.allocate(BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC).putInt(formatVersion).putInt(BYTES).putLong(layoutId);
        b.putInt(layout.layers()).putInt(layout.kvHeads()).putInt(layout.headDim()).putInt(layout.blockTokens());
        b.putInt(encoding.code()).put(fingerprint.bytes()).putLong(segmentId);
        CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, CRC_AT);
        b.putInt(CRC_AT, (int) crc.getValue());
        b.position(0);
        return b;
    }

    /**
     * Parses a header. The version is checked as soon as the CRC says the header is intact, before any field whose
     * meaning is the version's: an intact header of another version is another build's segment, refused, and never
     * mistaken for a damaged one (which the scan would quarantine).
     *
     * @throws CorruptSegmentException  when the bytes are not an intact header (bad magic or CRC, unknown encoding)
     * @throws SegmentMismatchException when it is intact but of a version this code does not read
     */
    static SegmentHeader decode(ByteBuffer raw) {
        ByteBuffer b = raw.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < BYTES) {
            throw new CorruptSegmentException("header of " + b.remaining() + " bytes, " + BYTES + " needed");
        }
        byte[] all = new byte[BYTES];
        b.get(all);
        if (!Arrays.equals(all, 0, MAGIC.length, MAGIC, 0, MAGIC.length)) {
            throw new CorruptSegmentException("not a KV segment (bad magic)");
        }
        ByteBuffer h = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        CRC32C crc = new CRC32C();
        crc.update(all, 0, CRC_AT);
        if (h.getInt(CRC_AT) != (int) crc.getValue()) {
            throw new CorruptSegmentException("header CRC32C mismatch");
        }
        h.position(MAGIC.length);
        int version = h.getInt();
        if (version < OLDEST_READABLE_VERSION || version > FORMAT_VERSION) {
            throw new SegmentMismatchException("segment format version " + version + ", this store reads versions "
                    + OLDEST_READABLE_VERSION + " to " + FORMAT_VERSION
                    + "; use another directory or remove the old segments");
        }
        h.getInt();
        long layoutId = h.getLong();
        int layers = h.getInt();
        int kvHeads = h.getInt();
        int headDim = h.getInt();
        int blockTokens = h.getInt();
        int encodingCode = h.getInt();
        byte[] fp = new byte[ModelFingerprint.BYTES];
        h.get(fp);
        long id = h.getLong();
        PayloadEncoding encoding;
        KvLayout layout;
        try {
            encoding = PayloadEncoding.ofCode(encodingCode);
            layout = new KvLayout(layers, kvHeads, headDim, blockTokens);
        } catch (IllegalArgumentException e) {
            throw new CorruptSegmentException(e.getMessage());
        }
        return new SegmentHeader(version, layout, layoutId, encoding, ModelFingerprint.of(fp), id);
    }

    /** Bytes of one record (header + payload) in a segment with this header. */
    int recordBytes() {
        return encoding.recordBytes(layout);
    }
}
