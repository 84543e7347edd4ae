package io.moemesh.kvcache.tier;

import java.util.Optional;

/**
 * What {@link TieredKvStore#put} did and where the block is now.
 *
 * @param result what happened
 * @param tier   the tier holding the block after the put; empty when it is not stored (DECLINED, NO_SPACE)
 */
public record StoreResult(PutResult result, Optional<TierKind> tier) {
}
