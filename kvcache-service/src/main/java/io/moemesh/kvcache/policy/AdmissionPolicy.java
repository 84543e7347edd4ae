package io.moemesh.kvcache.policy;

import io.moemesh.kvcache.block.BlockKey;

/**
 * Whether a new block is worth storing at all. A block that will never be read again only displaces useful ones
 * (the one-hit wonders of a prefix-cache trace); a policy may decline it and the put reports so. Called under the
 * store's lock, so it need not be thread-safe.
 */
@FunctionalInterface
public interface AdmissionPolicy {
    /** Stores everything. */
    AdmissionPolicy ADMIT_ALL = (key, hint) -> true;

    /** True to store the block, false to decline it. */
    boolean admit(BlockKey key, AccessHint hint);
}
