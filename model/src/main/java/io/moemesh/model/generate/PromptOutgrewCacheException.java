package io.moemesh.model.generate;

/**
 * A prompt longer than the KV pool no longer fits in it: it holds the whole pool past its remote prefix while none of
 * its blocks can move to another tier (the offload failed, or declined to wait for its room, or the blocks have no
 * hash). Only an offload lifts the cache's length bound ({@link io.moemesh.model.engine.KvCache#maxSequencePositions}),
 * so only such a prompt gets this far: it was admitted for a context the cache serves with the other tier, and ends
 * because that tier could not take its blocks, not because it was malformed. Not an {@link IllegalArgumentException}
 * therefore: a server tells its client the tier was unavailable (the gateway: 503 / UNAVAILABLE), not that its
 * request was bad.
 */
public final class PromptOutgrewCacheException extends RuntimeException {
    private final int promptTokens;
    private final long positions;

    /**
     * @param promptTokens the prompt's tokens
     * @param positions    what the cache can hold for it: its pool and what did move to the other tier
     */
    public PromptOutgrewCacheException(int promptTokens, long positions) {
        super("prompt of " + promptTokens + " tokens does not fit in the " + positions + " positions the KV cache can "
                + "hold for it (its pool, and what moved to another tier) while none of its blocks can move out");
        this.promptTokens = promptTokens;
        this.positions = positions;
    }

    public int promptTokens() {
        return promptTokens;
    }

    /** What the cache can hold for the sequence: its pool and what did move to the other tier. */
    public long positions() {
        return positions;
    }
}
