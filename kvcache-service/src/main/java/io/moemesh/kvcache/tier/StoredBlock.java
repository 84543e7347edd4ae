package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.KvBlock;

/**
 * A block and the tier it was read from (before any promotion the read caused).
 *
 * @param block the whole block
 * @param tier  where it was found
 */
public record StoredBlock(KvBlock block, TierKind tier) {
}
