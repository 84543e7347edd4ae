package io.moemesh.kvcache.block;

import io.moemesh.model.kv.BlockHash;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * The key of a stored KV block: the 32 bytes of the gateway's chained {@link BlockHash} (SHA-256 over the parent's
 * hash, the block's token ids, the model fingerprint and the tenant salt; {@code BlockHash}'s javadoc is the
 * normative layout). Equal keys mean equal prefixes of the same model for the same tenant, so the store never needs
 * the tokens: a block is content-addressed, and any copy of a key holds the same K and V.
 *
 * <p>Immutable; equality and hash code over the 32 bytes; {@link #toString()} is the full lowercase hex.
 */
public final class BlockKey {
    /** Bytes of a key (SHA-256). */
    public static final int BYTES = BlockHash.BYTES;

    private final byte[] bytes;
    private final int hashCode;

    private BlockKey(byte[] bytes) {
        this.bytes = bytes;
        // SHA-256 output is uniform: its first four bytes are as good a hash code as any.
        this.hashCode = ByteBuffer.wrap(bytes).getInt();
    }

    /**
     * A key from its 32 bytes (copied).
     *
     * @throws IllegalArgumentException naming the length when it is not {@link #BYTES}
     */
    public static BlockKey of(byte[] bytes) {
        if (bytes == null || bytes.length != BYTES) {
            throw new IllegalArgumentException("block_hash: a block key has " + BYTES + " bytes, got "
                    + (bytes == null ? "none" : bytes.length));
        }
        return new BlockKey(bytes.clone());
    }

    /** The key of a block the gateway hashed. */
    public static BlockKey of(BlockHash hash) {
        return new BlockKey(hash.bytes());
    }

    /** Reads {@link #BYTES} bytes at the buffer's position (advancing it). */
    public static BlockKey read(ByteBuffer from) {
        byte[] b = new byte[BYTES];
        from.get(b);
        return new BlockKey(b);
    }

    /** Writes the 32 bytes at the buffer's position (advancing it). */
    public void writeTo(ByteBuffer to) {
        to.put(bytes);
    }

    /** A copy of the 32 bytes. */
    public byte[] bytes() {
        return bytes.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BlockKey k && Arrays.equals(bytes, k.bytes);
    }

    @Override
    public int hashCode() {
        return hashCode;
    }

    @Override
    public String toString() {
        return HexFormat.of().formatHex(bytes);
    }
}
