package io.moemesh.kvcache.block;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * The shape of every block of one model: K and V of {@code blockTokens} positions for all {@code layers} and
 * {@code kvHeads}, float32 (the fidelity rule: the wire and the DRAM tier are float32; int8 is an SSD-only option).
 *
 * <p>Float order inside a block (the payload order {@code kvcache.proto}'s file comment defines for {@code Put}'s data
 * and {@code Get}'s chunks, so an adapter copies each layer's K and V tensors as one contiguous run): for each layer
 * ascending, K then V, each {@code [kvHeads][blockTokens][headDim]} row-major. The float at (layer, k or v, head,
 * token, dim) is at {@link #offset}. Little-endian bytes.
 *
 * <p>The {@link #id()} is written into every SSD segment header: a segment written for another layout (or by
 * another {@link #VERSION} of this encoding) is refused when the tier opens.
 *
 * @param layers      decoder layers of the model (≥ 1)
 * @param kvHeads     key/value heads per layer (≥ 1)
 * @param headDim     dimensions per head (≥ 1)
 * @param blockTokens positions per block, the gateway's block size (≥ 1; 16 by default)
 */
public record KvLayout(int layers, int kvHeads, int headDim, int blockTokens) {
    /** Version of the float order above; part of {@link #id()}. Bump when the order changes. */
    public static final int VERSION = 1;
    /** Bytes per stored value (float32). */
    public static final int FLOAT_BYTES = Float.BYTES;

    public KvLayout {
        positive("layers", layers);
        positive("kvHeads", kvHeads);
        positive("headDim", headDim);
        positive("blockTokens", blockTokens);
        long bytes = 2L * layers * kvHeads * blockTokens * headDim * FLOAT_BYTES;
        if (bytes > Integer.MAX_VALUE - 1024) {
            throw new IllegalArgumentException("a block of layout " + layers + "x" + kvHeads + "x" + headDim + "x"
                    + blockTokens + " would have " + bytes + " bytes, more than one buffer holds");
        }
    }

    private static void positive(String name, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be positive, got " + value);
        }
    }

    /** Floats of one layer's K (or V): kvHeads · blockTokens · headDim. */
    public int floatsPerTensor() {
        return kvHeads * blockTokens * headDim;
    }

    /** Floats of a whole block: 2 · layers · floatsPerTensor. */
    public int floatsPerBlock() {
        return 2 * layers * floatsPerTensor();
    }

    /** Bytes of a whole block as float32. */
    public int bytesPerBlock() {
        return floatsPerBlock() * FLOAT_BYTES;
    }

    /** Rows of headDim values in a block (the unit of the int8 encoding's per-row scale). */
    public int rowsPerBlock() {
        return 2 * layers * kvHeads * blockTokens;
    }

    /**
     * Float index of (layer, K or V, kv head, token in block, dim).
     *
     * @param value false for K, true for V
     */
    public int offset(int layer, boolean value, int head, int token, int dim) {
        return ((((layer * 2) + (value ? 1 : 0)) * kvHeads + head) * blockTokens + token) * headDim + dim;
    }

    /** Float index of the start of one layer's K (value false) or V (value true) tensor. */
    public int tensorOffset(int layer, boolean value) {
        return offset(layer, value, 0, 0, 0);
    }

    /**
     * 64-bit identity of this layout and {@link #VERSION}: the first 8 bytes (big-endian) of SHA-256 over
     * {@code "moemesh-kv-layout" ‖ VERSION ‖ layers ‖ kvHeads ‖ headDim ‖ blockTokens ‖ "f32"} (int32 little-endian).
     */
    public long id() {
        ByteBuffer b = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
        b.put("moemesh-kv-layout".getBytes(StandardCharsets.US_ASCII));
        b.putInt(VERSION).putInt(layers).putInt(kvHeads).putInt(headDim).putInt(blockTokens);
        b.put("f32".getBytes(StandardCharsets.US_ASCII));
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(java.util.Arrays.copyOf(b.array(), b.position()));
            return ByteBuffer.wrap(d).getLong();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }

    @Override
    public String toString() {
        return "KvLayout[layers=" + layers + ", kvHeads=" + kvHeads + ", headDim=" + headDim + ", blockTokens="
                + blockTokens + ", f32, v" + VERSION + "]";
    }
}
