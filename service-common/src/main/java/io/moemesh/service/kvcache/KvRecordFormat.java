package io.moemesh.service.kvcache;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.zip.CRC32C;

/**
 * The one definition of a kvcache-service SSD record and of its payload encodings, used by the service that writes
 * and reads the segment files and by a same-host client that reads them itself ({@link LocalBlockReader}, after
 * {@code Locate}). A record, little-endian:
 * <pre>
 *   0 record magic 0x4B565231 ("KVR1", int32)   4 key (32 bytes)   36 payload length (int32)
 *  40 CRC32C over bytes [4, 40) and the payload (int32)             44 payload
 * </pre>
 * The CRC covers the key and the length, so a flipped byte anywhere but the magic fails the check, and a damaged
 * magic fails the magic test. Every method here takes a record as the bytes of a buffer from index 0 to its limit
 * (a slice of a larger read is fine).
 *
 * <p>Payload encodings ({@code kvcache.v1.PayloadEncoding}): float32 ({@link #FLOAT32_CODE}), the block's bytes as
 * they are; int8 ({@link #INT8_CODE}), one float32 scale per row of {@code headDim} values, all rows' scales first,
 * then all rows' int8 values, value = int8 · scale.
 */
public final class KvRecordFormat {
    /** Record magic, "KVR1". */
    public static final int MAGIC = 0x4B565231;
    /** Bytes before the payload. */
    public static final int HEADER_BYTES = 44;
    /** Bytes of the key (the block hash). */
    public static final int KEY_BYTES = 32;
    private static final int KEY_AT = 4;
    private static final int LENGTH_AT = 36;
    private static final int CRC_AT = 40;
    /** Bytes CRC-checked and then copied per step of {@link #verifyInto}: stays in L1/L2 between the two. */
    public static final int VERIFY_STEP_BYTES = 64 * 1024;
    /** The float32 encoding's code in segment headers. */
    public static final int FLOAT32_CODE = 0;
    /** The int8 encoding's code in segment headers. */
    public static final int INT8_CODE = 1;

    private KvRecordFormat() {
    }

    /** Starts a record: writes the header fields except the CRC and positions {@code rec} at the payload. */
    public static void begin(ByteBuffer rec, byte[] key, int payloadBytes) {
        rec.order(ByteOrder.LITTLE_ENDIAN);
        rec.putInt(0, MAGIC);
        rec.put(KEY_AT, key, 0, KEY_BYTES);
        rec.putInt(LENGTH_AT, payloadBytes);
        rec.position(HEADER_BYTES);
    }

    /** Fills in the CRC after the payload was written (to the buffer's capacity); leaves {@code rec} at 0. */
    public static void seal(ByteBuffer rec) {
        rec.order(ByteOrder.LITTLE_ENDIAN);
        rec.putInt(CRC_AT, crc(rec.duplicate().clear()));
        rec.position(0);
    }

    /** The CRC32C of a record's covered bytes ({@code rec}'s index 0 to its limit). */
    public static int crc(ByteBuffer rec) {
        CRC32C c = new CRC32C();
        c.update(rec.duplicate().position(KEY_AT).limit(CRC_AT));
        c.update(rec.duplicate().position(HEADER_BYTES));
        return (int) c.getValue();
    }

    /** The CRC32C the record's header holds. */
    public static int storedCrc(ByteBuffer rec) {
        return rec.duplicate().order(ByteOrder.LITTLE_ENDIAN).getInt(CRC_AT);
    }

    /** The record's key bytes. */
    public static byte[] key(ByteBuffer rec) {
        byte[] k = new byte[KEY_BYTES];
        rec.get(KEY_AT, k);
        return k;
    }

    /** Whether the record's header says it is a record of {@code payloadBytes} (magic, length, size). */
    private static boolean header(ByteBuffer rec, int payloadBytes) {
        ByteBuffer le = rec.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        return le.limit() == HEADER_BYTES + payloadBytes && le.getInt(0) == MAGIC
                && le.getInt(LENGTH_AT) == payloadBytes;
    }

    /** Whether {@code rec} (index 0 to limit) is an intact record of {@code payloadBytes}: magic, length and CRC. */
    public static boolean verify(ByteBuffer rec, int payloadBytes) {
        return header(rec, payloadBytes) && storedCrc(rec) == crc(rec);
    }

    /**
     * As {@link #verify}, copying the payload into {@code payloadOut} in the same pass: each step is CRC32C-checked
     * and then copied while it is still in the core's cache, instead of a copy of the whole record followed by a CRC
     * over the copy.
     *
     * @return whether the record is intact ({@code payloadOut} holds garbage otherwise and must not be used)
     */
    public static boolean verifyInto(ByteBuffer rec, int payloadBytes, byte[] payloadOut) {
        if (!header(rec, payloadBytes) || payloadOut.length != payloadBytes) {
            return false;
        }
        CRC32C c = new CRC32C();
        c.update(rec.duplicate().position(KEY_AT).limit(CRC_AT));
        int end = rec.limit();
        for (int at = HEADER_BYTES; at < end; at += VERIFY_STEP_BYTES) {
            int n = Math.min(VERIFY_STEP_BYTES, end - at);
            c.update(rec.duplicate().position(at).limit(at + n));
            rec.get(at, payloadOut, at - HEADER_BYTES, n);
        }
        return storedCrc(rec) == (int) c.getValue();
    }

    /** Whether the record's key is {@code key}. */
    public static boolean hasKey(ByteBuffer rec, byte[] key) {
        return key.length == KEY_BYTES && rec.duplicate().position(KEY_AT).limit(KEY_AT + KEY_BYTES)
                .equals(ByteBuffer.wrap(key));
    }

    /** Bytes of an int8 payload of {@code rows} rows of {@code dim} values. */
    public static int int8PayloadBytes(int rows, int dim) {
        return rows * (Float.BYTES + dim);
    }

    /**
     * Writes {@code rows} rows of {@code dim} floats of {@code in} (from index 0) as int8 at {@code out}'s position
     * (advancing it).
     *
     * @throws IllegalArgumentException naming the float's index when a value is not finite
     */
    public static void encodeInt8(FloatBuffer in, int rows, int dim, ByteBuffer out) {
        ByteBuffer o = out.slice().order(ByteOrder.LITTLE_ENDIAN);
        int valuesAt = rows * Float.BYTES;
        for (int r = 0; r < rows; r++) {
            float max = 0;
            for (int d = 0; d < dim; d++) {
                float x = in.get(r * dim + d);
                if (!Float.isFinite(x)) {
                    throw new IllegalArgumentException("value " + x + " at float " + (r * dim + d)
                            + " cannot be stored as int8");
                }
                max = Math.max(max, Math.abs(x));
            }
            float scale = max / 127f;
            o.putFloat(r * Float.BYTES, scale);
            for (int d = 0; d < dim; d++) {
                int q = scale == 0 ? 0 : Math.round(in.get(r * dim + d) / scale);
                o.put(valuesAt + r * dim + d, (byte) Math.max(-127, Math.min(127, q)));
            }
        }
        out.position(out.position() + int8PayloadBytes(rows, dim));
    }

    /**
     * Decodes an int8 payload ({@code payload}'s position to limit, {@code rows} rows of {@code dim} values) into
     * float32 little-endian bytes in {@code out} (from index 0).
     */
    public static void decodeInt8(ByteBuffer payload, int rows, int dim, ByteBuffer out) {
        ByteBuffer p = payload.slice().order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer o = out.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int valuesAt = rows * Float.BYTES;
        for (int r = 0; r < rows; r++) {
            float scale = p.getFloat(r * Float.BYTES);
            for (int d = 0; d < dim; d++) {
                o.putFloat((r * dim + d) * Float.BYTES, p.get(valuesAt + r * dim + d) * scale);
            }
        }
    }
}
