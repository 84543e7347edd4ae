package io.moemesh.kvcache.tier;

/** What a put did. A put is all-or-nothing: only {@link #STORED} wrote anything. */
public enum PutResult {
    /** The block is now stored and visible. */
    STORED,
    /** A block with this key was already stored (equal keys hold equal K/V): nothing written. */
    ALREADY_PRESENT,
    /** The admission policy declined the block: nothing stored (not an error; the caller keeps its copy). */
    DECLINED,
    /** No room: every block that could make room is pinned (a shortage: RESOURCE_EXHAUSTED on the wire). */
    NO_SPACE
}
