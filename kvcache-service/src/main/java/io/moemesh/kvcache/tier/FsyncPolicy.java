package io.moemesh.kvcache.tier;

/**
 * When the SSD tier forces appended records to stable storage ({@code FileChannel.force}). Every put into the SSD
 * tier (a block stored there, a demotion from DRAM) writes its record with a system call before it returns, so a
 * process crash (kill -9) loses none of these records under any policy: the bytes are in the OS page cache. The
 * policies differ on an OS crash or power loss. A block held in the DRAM tier above has no record yet: no policy
 * covers it until it is demoted. {@link SsdTier#sync()} forces every segment with unforced records under any policy.
 */
public enum FsyncPolicy {
    /** Force after every put, before it returns: an acknowledged block survives power loss. Slowest. */
    ALWAYS,
    /**
     * Force when {@code fsyncIntervalMillis} have passed or {@code fsyncIntervalBytes} were appended since the last
     * force, checked on every put and by a background timer every {@code fsyncIntervalMillis}. The default. Loss
     * window on power loss: the blocks acknowledged in the last {@code fsyncIntervalMillis} (plus one timer tick),
     * at most about {@code fsyncIntervalBytes} of records; what is lost is detected as a torn tail or a checksum
     * failure on restart and never served.
     */
    INTERVAL,
    /**
     * Never force (the OS writes back when it likes) until {@link SsdTier#sync()} or {@link SsdTier#close()};
     * compaction's copies are still forced before it deletes the originals.
     */
    NEVER
}
