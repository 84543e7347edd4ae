package io.moemesh.kvcache.policy;

import io.moemesh.kvcache.block.BlockKey;
import java.util.List;

/**
 * Told each request's whole block chain before its blocks are looked up, read or stored: what a prefix-aware
 * policy needs beyond single-block events (which conversation a chain continues, which block is its last). The
 * service calls it on every {@code Lookup} that is not a repeat (the gateway's Lookup carries the whole prompt's
 * chain from block 0, the blocks it holds itself included, and says {@code repeat} when it asks about a sequence
 * again: a resume, a second try at its admission); a put that no lookup announced is still stored, with what the
 * policy knows of its key. Implementations are thread-safe.
 */
@FunctionalInterface
public interface ChainObserver {
    /** Ignores every chain (LRU needs none). */
    ChainObserver NONE = (chain, arrivalMillis) -> {
    };

    /**
     * @param chain         the request's block keys, block 0 first
     * @param arrivalMillis the request's arrival (ms, non-decreasing over requests as far as the caller can tell),
     *                      negative when unknown
     */
    void observe(List<BlockKey> chain, long arrivalMillis);
}
