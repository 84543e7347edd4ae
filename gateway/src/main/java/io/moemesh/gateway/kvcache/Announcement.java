package io.moemesh.gateway.kvcache;

/** What became of an announcement of a request's chain ({@link KvCacheClient#announce}). */
public enum Announcement {
    /** Sent (a Lookup with every block held; its answer is not waited for). */
    SENT,
    /** Not sent: {@link ChainLookups#MAX_ANNOUNCEMENTS_IN_FLIGHT} announcements were unanswered (a slow service). */
    DROPPED,
    /** Not sent, by design: an empty chain, or a service that predates held_blocks (until it is re-checked). */
    NOT_SENT
}
