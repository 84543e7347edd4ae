package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.service.kvcache.KvRecordFormat;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * How an SSD record stores a block's floats (the bytes of both encodings are defined in service-common's
 * {@link KvRecordFormat}, which a same-host reader of the files uses too). Chosen per segment (written in its header), so changing the setting
 * leaves older segments readable.
 */
public enum PayloadEncoding {
    /** The block's float32 bytes as they are: lossless, and read back without a copy. The default. */
    FLOAT32(KvRecordFormat.FLOAT32_CODE),
    /**
     * Symmetric int8 with one float32 scale per row of headDim values (one (layer, K or V, head, token)): the
     * scales of all rows first, then all rows' int8 values. About 4x smaller; the error of a value is at most half
     * a step, {@code max|row| / 254}. Lossy, so off by default: the fidelity rule keeps the wire and DRAM
     * float32, and int8 KV is an accuracy trade the operator must choose (as KIVI / LMCache's quantised offload).
     * Blocks with non-finite values are refused under it ({@link #checkStorable}).
     */
    INT8(KvRecordFormat.INT8_CODE);

    private final int code;

    PayloadEncoding(int code) {
        this.code = code;
    }

    /** The code written into segment headers. */
    public int code() {
        return code;
    }

    /** The encoding of a header code. @throws IllegalArgumentException for an unknown code */
    public static PayloadEncoding ofCode(int code) {
        for (PayloadEncoding e : values()) {
            if (e.code == code) {
                return e;
            }
        }
        throw new IllegalArgumentException("unknown payload encoding code " + code);
    }

    /** Bytes of one block's payload. */
    public int payloadBytes(KvLayout layout) {
        return switch (this) {
            case FLOAT32 -> layout.bytesPerBlock();
            case INT8 -> KvRecordFormat.int8PayloadBytes(layout.rowsPerBlock(), layout.headDim());
        };
    }

    /** Bytes of one record in a segment: the record header plus {@link #payloadBytes}. */
    public int recordBytes(KvLayout layout) {
        return Records.HEADER_BYTES + payloadBytes(layout);
    }

    /**
     * Refuses a block this encoding cannot store: INT8 cannot hold NaN or ±Infinity (a row's scale would not be
     * finite); FLOAT32 stores every block.
     *
     * @throws IllegalArgumentException naming the first non-finite value's index
     */
    public void checkStorable(KvBlock block) {
        if (this != INT8) {
            return;
        }
        FloatBuffer f = block.floats();
        for (int i = 0, n = f.limit(); i < n; i++) {
            float x = f.get(i);
            if (!Float.isFinite(x)) {
                throw new IllegalArgumentException("float " + i + " is " + x + ": int8 SSD storage cannot hold "
                        + "non-finite values (NaN, Infinity)");
            }
        }
    }

    /** Writes the block's payload at {@code out}'s position (advancing it). */
    public void encode(KvBlock block, ByteBuffer out) {
        KvLayout layout = block.layout();
        switch (this) {
            case FLOAT32 -> out.put(block.data());
            case INT8 -> {
                try {
                    KvRecordFormat.encodeInt8(block.floats(), layout.rowsPerBlock(), layout.headDim(), out);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("block " + block.key() + ": " + e.getMessage(), e);
                }
            }
        }
    }

    /**
     * The block from its payload ({@code payload}'s position to limit). FLOAT32 takes ownership of the buffer
     * (no copy); INT8 decodes into a new one.
     */
    public KvBlock decode(BlockKey key, KvLayout layout, ByteBuffer payload) {
        return switch (this) {
            case FLOAT32 -> KvBlock.wrapOwned(key, layout, payload);
            case INT8 -> {
                ByteBuffer out = ByteBuffer.allocate(layout.bytesPerBlock()).order(ByteOrder.LITTLE_ENDIAN);
                KvRecordFormat.decodeInt8(payload, layout.rowsPerBlock(), layout.headDim(), out);
                yield KvBlock.wrapOwned(key, layout, out);
            }
        };
    }
}
