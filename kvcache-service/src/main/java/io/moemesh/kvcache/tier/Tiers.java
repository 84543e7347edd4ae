package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.KvBlock;
import io.moemesh.kvcache.block.KvLayout;

/** Input checks every tier applies to a put, so all report bad blocks with the same words. */
final class Tiers {
    private Tiers() {
    }

    /** @param tier what the message calls the receiver ("DRAM tier", "store") */
    static void checkBlock(KvBlock block, KvLayout layout, long capacityBytes, String tier) {
        if (block == null) {
            throw new IllegalArgumentException("block must be set");
        }
        if (!block.layout().equals(layout)) {
            throw new IllegalArgumentException("block " + block.key() + " has " + block.layout() + ", but the "
                    + tier + " stores " + layout);
        }
        if (block.sizeBytes() > capacityBytes) {
            throw new IllegalArgumentException("block " + block.key() + " of " + block.sizeBytes()
                    + " bytes exceeds the capacity of the " + tier + ", " + capacityBytes + " bytes");
        }
    }
}
