package io.moemesh.gateway.kvcache;

import java.util.HashMap;
import java.util.Map;

/**
 * {@link RemotePrefixes}' fetch budget (its class comment): the blocks each started, not yet imported fetch may
 * bring, held decoded until its sequence is admitted. Engine thread only; {@link #peakBlocks} from any thread.
 */
final class FetchBudget {
    private final Map<Long, Integer> reserved = new HashMap<>();
    private int blocks;
    private volatile long peak;

    /** Whether a fetch of {@code more} blocks stays within {@code room} (the pool's free plus cached blocks). */
    boolean fits(int more, int room) {
        return blocks + more <= room;
    }

    /** The sequence's fetch started: its {@code n} blocks count until {@link #release}. */
    void reserve(long seqId, int n) {
        reserved.put(seqId, n);
        blocks += n;
        peak = Math.max(peak, blocks);
    }

    /** The sequence's fetch ended or was cancelled: its share is free. */
    void release(long seqId) {
        Integer n = reserved.remove(seqId);
        if (n != null) {
            blocks -= n;
        }
    }

    /** Blocks the started, not yet imported fetches may bring. */
    int blocks() {
        return blocks;
    }

    /** The highest {@link #blocks} so far. */
    long peakBlocks() {
        return peak;
    }
}
