package io.moemesh.gateway.kvcache;

import io.moemesh.model.kv.BlockHash;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Which of {@link RemotePrefixes}'s sequences the kvcache-service's policy was told of (a Lookup or an announcement
 * that went out), and the announcements of those that fetch nothing. Engine thread only, but the counters, which any
 * thread may read. The call does not block (the client queues the chain to its announcer thread, at most {@link
 * ChainLookups#MAX_ANNOUNCEMENTS_IN_FLIGHT} unanswered), so it needs no fetch thread and never waits behind a fetch.
 */
final class SequenceAnnouncements {
    private static final Logger log = LoggerFactory.getLogger(SequenceAnnouncements.class);

    private final KvCacheClient client;
    private final Duration timeout;
    private final Set<Long> told = new HashSet<>();
    /** Sequences an announcement was dropped for: each is tried again at its next admission attempt. */
    private final Set<Long> dropped = new HashSet<>();
    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong droppedSequences = new AtomicLong();

    /** @param timeout each announcement's deadline */
    SequenceAnnouncements(KvCacheClient client, Duration timeout) {
        this.client = client;
        this.timeout = timeout;
    }

    /** Whether the service was told of {@code seqId}'s chain: its next Lookup is a repeat. */
    boolean told(long seqId) {
        return told.contains(seqId);
    }

    /** A Lookup carrying {@code seqId}'s chain went out. */
    void lookupSent(long seqId) {
        told.add(seqId);
        dropped.remove(seqId);
    }

    /**
     * Tells the service's policy of {@code seqId}'s chain unless it was told already (a Lookup or an announcement went
     * out); it counts as told only when the announcement went out.
     */
    void announce(long seqId, List<BlockHash> chain) {
        if (told(seqId)) {
            return;
        }
        Announcement a;
        try {
            a = client.announce(chain, timeout);
        } catch (RuntimeException e) {
            log.debug("KV chain not announced to {}: {}", client.endpoint(), e.toString());
            return;
        }
        switch (a) {
            case SENT -> {
                lookupSent(seqId);
                sent.incrementAndGet();
            }
            case DROPPED -> {
                // Tried again at every step the sequence waits: the metric counts requests, not tries.
                if (dropped.add(seqId)) {
                    droppedSequences.incrementAndGet();
                }
            }
            case NOT_SENT -> {
                // an empty chain, or a service that predates held_blocks: nothing to tell it
            }
        }
    }

    /** The sequence ended. */
    void forget(long seqId) {
        told.remove(seqId);
        dropped.remove(seqId);
    }

    /** Announcements sent. */
    long sent() {
        return sent.get();
    }

    /** Sequences an announcement was dropped for, once each (a later try of one may have been sent). */
    long droppedSequences() {
        return droppedSequences.get();
    }
}
