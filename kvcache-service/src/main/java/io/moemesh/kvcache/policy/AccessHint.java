package io.moemesh.kvcache.policy;

/**
 * What the caller knows about an access that the key alone does not say, for smarter policies (a block deep in a
 * chain is only useful after all its predecessors hit; Mooncake's and LMCache's prefix-aware eviction take the
 * chain's tail first).
 *
 * @param chainPosition the block's index in its sequence (block 0 covers positions [0, B)), or −1 when unknown
 */
public record AccessHint(int chainPosition) {
    /** Nothing known. */
    public static final AccessHint NONE = new AccessHint(-1);

    public AccessHint {
        if (chainPosition < -1) {
            throw new IllegalArgumentException("chainPosition must be ≥ 0, or −1 for unknown, got " + chainPosition);
        }
    }

    /** A hint with the block's position in its chain. */
    public static AccessHint atChainPosition(int position) {
        return new AccessHint(position);
    }
}
