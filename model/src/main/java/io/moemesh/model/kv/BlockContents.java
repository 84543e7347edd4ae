package io.moemesh.model.kv;

/**
 * One full KV block outside the paged pool: a copy handed to a {@link BlockSink} (write-back to a slower tier),
 * or a block fetched from one to {@link PrefixCachingKvCache#importBlocks import}. The arrays belong to the
 * holder (a copy is never a view of the pool).
 *
 * @param hash          its {@link BlockHash}
 * @param parent        the previous block's hash; null for block 0
 * @param tokens        its {@code blockTokens} token ids
 * @param tenant        the tenant whose salt is in the hash ("" for none)
 * @param chainPosition its index in the sequence (block i covers positions [B·i, B·(i+1)))
 * @param keys          per layer, {@code [blockTokens][kvDim]} float32 keys (token-major, the pool's layout)
 * @param values        per layer, the values, same layout
 */
public record BlockContents(BlockHash hash, BlockHash parent, int[] tokens, String tenant, int chainPosition,
                            float[][] keys, float[][] values) {
    public BlockContents {
        if (hash == null || tokens == null || tenant == null || keys == null || values == null) {
            throw new IllegalArgumentException("a block needs its hash, tokens, tenant, keys and values");
        }
        if (chainPosition < 0 || (chainPosition == 0) != (parent == null)) {
            throw new IllegalArgumentException("block " + hash + ": chain position " + chainPosition
                    + " and parent " + parent + " disagree (block 0 has no parent, every other block one)");
        }
        if (keys.length != values.length) {
            throw new IllegalArgumentException("block " + hash + ": " + keys.length + " layers of keys, "
                    + values.length + " of values");
        }
    }

    /**
     * Checks the block against a cache's shape and recomputes its hash from its parent, tokens, tenant and
     * {@code fingerprint}.
     *
     * @throws IllegalArgumentException naming what does not match
     */
    public void check(int blockTokens, int layers, int floatsPerLayer, ModelFingerprint fingerprint) {
        if (tokens.length != blockTokens || keys.length != layers) {
            throw new IllegalArgumentException("block " + hash + " has " + tokens.length + " tokens and " + keys.length
                    + " layers, expected " + blockTokens + " and " + layers);
        }
        for (int l = 0; l < layers; l++) {
            if (keys[l].length != floatsPerLayer || values[l].length != floatsPerLayer) {
                throw new IllegalArgumentException("block " + hash + " layer " + l + ": " + keys[l].length + " key and "
                        + values[l].length + " value floats, expected " + floatsPerLayer);
            }
        }
        if (!BlockHash.of(parent, tokens, 0, blockTokens, fingerprint, tenant).equals(hash)) {
            throw new IllegalArgumentException("block " + hash + ": its hash does not match its parent, tokens and "
                    + "tenant");
        }
    }

    /** Float32 payload bytes (keys and values of every layer). */
    public long payloadBytes() {
        long floats = 0;
        for (int l = 0; l < keys.length; l++) {
            floats += keys[l].length + values[l].length;
        }
        return floats * Float.BYTES;
    }
}
