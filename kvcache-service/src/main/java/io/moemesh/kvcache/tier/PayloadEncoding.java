package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * How an SSD record stores a block's floats. Chosen per segment (written in its header), so changing the setting
 * leaves older segments readable.
 */
public enum PayloadEncoding {
    /** The block's float32 bytes as they are: lossless, and read back without a copy. The default. */
    FLOAT32(0),
    /**
     * Symmetric int8 with one float32 scale per row of headDim values (one (layer, K or V, head, token)): the
     * scales of all rows first, then all rows' int8 values. About 4x smaller; the error of a value is at most half
     * a step, {@code max|row| / 254}. Lossy, so off by default: the fidelity rule keeps the wire and DRAM
     * float32, and int8 KV is an accuracy trade the operator must choose (as KIVI / LMCache's quantised offload).
     * Blocks with non-finite values are refused under it.
     */
    INT8(1);

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
            case INT8 -> layout.rowsPerBlock() * (Float.BYTES + layout.headDim());
        };
    }

    /** Writes the block's payload at {@code out}'s position (advancing it). */
    public void encode(KvBlock block, ByteBuffer out) {
        KvLayout layout = block.layout();
        switch (this) {
            case FLOAT32 -> out.put(block.data());
            case INT8 -> {
                int rows = layout.rowsPerBlock();
                int dim = layout.headDim();
                FloatBuffer f = block.floats();
                ByteBuffer o = out.slice().order(ByteOrder.LITTLE_ENDIAN);
                int valuesAt = rows * Float.BYTES;
                for (int r = 0; r < rows; r++) {
                    float max = 0;
                    for (int d = 0; d < dim; d++) {
                        float x = f.get(r * dim + d);
                        if (!Float.isFinite(x)) {
                            throw new IllegalArgumentException("block " + block.key() + ": value " + x + " at float "
                                    + (r * dim + d) + " cannot be stored as int8");
                        }
                        max = Math.max(max, Math.abs(x));
                    }
                    float scale = max / 127f;
                    o.putFloat(r * Float.BYTES, scale);
                    for (int d = 0; d < dim; d++) {
                        int q = scale == 0 ? 0 : Math.round(f.get(r * dim + d) / scale);
                        o.put(valuesAt + r * dim + d, (byte) Math.max(-127, Math.min(127, q)));
                    }
                }
                out.position(out.position() + payloadBytes(layout));
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
                ByteBuffer p = payload.slice().order(ByteOrder.LITTLE_ENDIAN);
                int rows = layout.rowsPerBlock();
                int dim = layout.headDim();
                int valuesAt = rows * Float.BYTES;
                ByteBuffer out = ByteBuffer.allocate(layout.bytesPerBlock()).order(ByteOrder.LITTLE_ENDIAN);
                for (int r = 0; r < rows; r++) {
                    float scale = p.getFloat(r * Float.BYTES);
                    for (int d = 0; d < dim; d++) {
                        out.putFloat((r * dim + d) * Float.BYTES, p.get(valuesAt + r * dim + d) * scale);
                    }
                }
                yield KvBlock.wrapOwned(key, layout, out);
            }
        };
    }
}
