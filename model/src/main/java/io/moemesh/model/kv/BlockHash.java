package io.moemesh.model.kv;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * THE key of a full KV block, chained over the prefix (vLLM's automatic prefix caching; the kvcache.v1 contract
 * addresses blocks by the same 32 bytes). Two blocks have equal hashes exactly when they hold the keys and values
 * of the same tokens at the same positions after the same prefix, of the same model, for the same tenant, so
 * either can stand for the other.
 *
 * <p>Byte layout: {@code hash(block i) = SHA-256(parent ‖ tokens ‖ len(fingerprint) ‖ fingerprint ‖ len(salt) ‖ salt)}
 * <ul>
 *   <li>{@code parent}: the 32 bytes of hash(block i−1); for block 0 (positions [0, B)), 32 zero bytes;</li>
 *   <li>{@code tokens}: the block's B token ids, each as int32 little-endian (B = 16 in the gateway: 64 bytes);</li>
 *   <li>{@code len(fingerprint)}: uint32 little-endian byte length of the fingerprint (32), then the
 *       {@link ModelFingerprint}'s bytes;</li>
 *   <li>{@code len(salt)}: uint32 little-endian byte length of the salt, then the salt: the tenant's name in
 *       UTF-8 (empty for no tenant).</li>
 * </ul>
 * Every block's hash carries the fingerprint and the salt, not only block 0's: a block can then be checked (and
 * stored in a tier) on its own, and a chain can never continue across models or tenants. The lengths make the
 * encoding unambiguous: no (fingerprint, salt) pair spells another's bytes. The golden vector in
 * {@code BlockHashTest} was computed independently with Python's hashlib from this description.
 *
 * <p>Immutable; equality and hash code are over the 32 bytes, so it is a map key.
 */
public final class BlockHash {
    /** Bytes of a block hash (SHA-256). */
    public static final int BYTES = 32;
    private static final byte[] ROOT_PARENT = new byte[BYTES];

    private final byte[] bytes;
    private final int hashCode;

    private BlockHash(byte[] bytes) {
        this.bytes = bytes;
        // SHA-256 output is uniform: its first four bytes are as good a hash code as any.
        this.hashCode = ByteBuffer.wrap(bytes).getInt();
    }

    /**
     * The hash of the block holding {@code tokens[from, from + count)}.
     *
     * @param parent the previous block's hash, or null for block 0
     * @param tenant the tenant whose sequence it is (its UTF-8 bytes are the salt; "" for none)
     */
    public static BlockHash of(BlockHash parent, int[] tokens, int from, int count, ModelFingerprint fingerprint,
                               String tenant) {
        if (from < 0 || count < 1 || from + count > tokens.length) {
            throw new IllegalArgumentException("block of " + count + " tokens at " + from + " outside " + tokens.length
                    + " tokens");
        }
        byte[] fp = fingerprint.raw();
        byte[] salt = tenant.getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocate(BYTES + 4 * count + 4 + fp.length + 4 + salt.length)
                .order(ByteOrder.LITTLE_ENDIAN);
        buf.put(parent == null ? ROOT_PARENT : parent.bytes);
        for (int i = 0; i < count; i++) {
            buf.putInt(tokens[from + i]);
        }
        buf.putInt(fp.length).put(fp).putInt(salt.length).put(salt);
        return new BlockHash(sha256(buf.array()));
    }

    /** A hash received from elsewhere (a KV tier): exactly {@link #BYTES} bytes. */
    public static BlockHash fromBytes(byte[] bytes) {
        if (bytes.length != BYTES) {
            throw new IllegalArgumentException("a block hash has " + BYTES + " bytes, got " + bytes.length);
        }
        return new BlockHash(bytes.clone());
    }

    private static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform has SHA-256", e);
        }
    }

    /** A copy of the 32 bytes. */
    public byte[] bytes() {
        return bytes.clone();
    }

    public String hex() {
        return HexFormat.of().formatHex(bytes);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BlockHash h && Arrays.equals(bytes, h.bytes);
    }

    @Override
    public int hashCode() {
        return hashCode;
    }

    @Override
    public String toString() {
        return hex().substring(0, 16);
    }
}
