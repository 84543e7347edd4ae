package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;

/** A call that needs stored blocks named one that is not stored (NOT_FOUND on the wire, naming the key). */
public final class BlockNotFoundException extends RuntimeException {
    private final transient BlockKey key;

    public BlockNotFoundException(BlockKey key) {
        super("block " + key + " is not stored");
        this.key = key;
    }

    /** The first missing block. */
    public BlockKey key() {
        return key;
    }
}
