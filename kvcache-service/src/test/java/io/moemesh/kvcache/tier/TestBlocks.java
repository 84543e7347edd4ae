package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;
import io.moemesh.model.kv.ModelFingerprint;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.Random;

/** Small deterministic blocks for the tier tests: block i's key and floats depend only on i. */
public final class TestBlocks {
    /** 2 layers, 2 KV heads, headDim 4, 4 tokens: 128 floats, 512 bytes. */
    public static final KvLayout LAYOUT = new KvLayout(2, 2, 4, 4);
    public static final ModelFingerprint MODEL = fingerprint(1);
    public static final int BLOCK_BYTES = LAYOUT.bytesPerBlock();
    /** Bytes a FLOAT32 record of {@link #LAYOUT} occupies in a segment. */
    public static final int RECORD_BYTES = 44 + BLOCK_BYTES;

    private TestBlocks() {
    }

    public static ModelFingerprint fingerprint(int seed) {
        byte[] b = new byte[32];
        new Random(seed).nextBytes(b);
        return ModelFingerprint.of(b);
    }

    public static BlockKey key(long i) {
        try {
            return BlockKey.of(MessageDigest.getInstance("SHA-256").digest(ByteBuffer.allocate(8).putLong(i).array()));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    public static float[] floats(long i, KvLayout layout) {
        Random r = new Random(i * 7919 + 17);
        float[] f = new float[layout.floatsPerBlock()];
        for (int j = 0; j < f.length; j++) {
            f[j] = (float) r.nextGaussian();
        }
        return f;
    }

    public static KvBlock block(long i) {
        return block(i, LAYOUT);
    }

    public static KvBlock block(long i, KvLayout layout) {
        return KvBlock.of(key(i), layout, floats(i, layout));
    }
}
