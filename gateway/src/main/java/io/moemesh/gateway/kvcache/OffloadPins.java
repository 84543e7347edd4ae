package io.moemesh.gateway.kvcache;

import io.moemesh.model.kv.BlockHash;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@link AttendOffload}'s Pins at the kvcache-service and their release.
 *
 * <p>Each Pin carries a fresh random pin id ({@code PinRequest.pin_id}) and is released by an Unpin of that id, which
 * releases exactly what that Pin pinned. Why: a Pin that fails on this side (its deadline, a reset connection, an
 * answer of the wrong size) may have pinned on the service, and pins nest, so unpinning its hashes could release
 * another sequence's pin of a shared prefix block, while doing nothing leaves the blocks unevictable until the service
 * restarts. So any Pin failure is followed by an Unpin of its id (nothing to release if the Pin never ran; one that
 * arrives later then pins nothing). A release by id that fails is tried again, {@link #UNPIN_ATTEMPTS} times in all,
 * a second apart and more (the pin thread is not held meanwhile); then it is logged: the service forgets pins on
 * restart.
 *
 * <p>A service that predates pin ids (a rolling upgrade: a new gateway, an old service) ignores them: its answer
 * does not echo the id ({@code PinResponse.pin_id}) and an Unpin of the id releases nothing there. A Pin whose answer
 * does not echo its id is therefore released by hashes, exactly the blocks the answer said pinned (each such Pin took
 * one nested pin of each), once only: an Unpin by hashes is not idempotent, so one whose outcome is unknown is not
 * sent again (a second could release another Pin's pin). A Pin that fails against such a service cannot be released
 * at all (whether it ran is unknown, and its id means nothing there): if it ran, its pins stay until that service
 * restarts, as before pin ids.
 *
 * <p>Thread-safe; the Unpins run on the offload's pin thread.
 */
final class OffloadPins {
    private static final Logger log = LoggerFactory.getLogger(OffloadPins.class);
    /** Unpins of one pin id tried at most (1 s, then 2 s apart) before its blocks are left to a restart. */
    static final int UNPIN_ATTEMPTS = 3;

    private final KvCacheClient client;
    private final Executor pins;
    private final Duration timeout;
    private final AtomicBoolean toldOfOldService = new AtomicBoolean();

    /**
     * One Pin and how to release it: by {@code pinId}, or (the service did not echo the id) by {@code byHashes}, the
     * hashes it pinned.
     *
     * @param blocks the blocks it names (for the log)
     */
    record Taken(byte[] pinId, List<BlockHash> byHashes, int blocks) {
    }

    /** A Pin's answer: per hash whether it is pinned now, and how to release what it pinned. */
    record Answer(List<Boolean> pinned, Taken taken) {
    }

    /**
     * @param pins    the thread Unpins run on
     * @param timeout each Pin's and Unpin's deadline
     */
    OffloadPins(KvCacheClient client, Executor pins, Duration timeout) {
        this.client = client;
        this.pins = pins;
        this.timeout = timeout;
    }

    /**
     * Pins {@code hashes} under a fresh id. When the call fails the id is released (later, on the pin thread) before
     * this rethrows.
     */
    Answer pin(List<BlockHash> hashes) {
        byte[] pinId = KvCacheClient.newPinId();
        KvCacheClient.PinAnswer a;
        try {
            a = client.pin(hashes, pinId, timeout);
        } catch (RuntimeException e) {
            // The service may have pinned (an answer lost or unusable): release by the id, which frees exactly what
            // this Pin pinned, nothing if it never ran, and makes a Pin still on its way pin nothing.
            release(new Taken(pinId, null, hashes.size()));
            throw e;
        }
        if (a.idHonoured()) {
            return new Answer(a.pinned(), new Taken(pinId, null, hashes.size()));
        }
        if (toldOfOldService.compareAndSet(false, true)) {
            log.warn("the kvcache-service at {} does not echo pin ids (it predates them): the Attend offload releases "
                    + "its Pins by hashes, and a Pin that fails there may leave its blocks pinned until it restarts",
                    client.endpoint());
        }
        List<BlockHash> pinned = new ArrayList<>();
        for (int i = 0; i < hashes.size(); i++) {
            if (a.pinned().get(i)) {
                pinned.add(hashes.get(i));
            }
        }
        return new Answer(a.pinned(), new Taken(null, List.copyOf(pinned), pinned.size()));
    }

    /**
     * Releases what a Pin took, later, on the pin thread. A Pin by id is released even when it pinned nothing: the
     * service keeps its id (counted against its bound of blocks under pin ids) until an Unpin names it.
     */
    void release(Taken t) {
        if (t.pinId() != null || !t.byHashes().isEmpty()) {
            unpinLater(t, 1);
        }
    }

    /**
     * Unpins on the pin thread, the {@code attempt}th time: a failed Unpin of an id is tried again after
     * {@code attempt} seconds, {@link #UNPIN_ATTEMPTS} times in all, then left to a restart of the service; a failed
     * Unpin by hashes is left to it at once (not idempotent).
     */
    private void unpinLater(Taken t, int attempt) {
        try {
            pins.execute(() -> {
                try {
                    if (t.pinId() != null) {
                        client.unpin(t.pinId(), timeout);
                    } else {
                        client.unpin(t.byHashes(), timeout);
                    }
                } catch (RuntimeException e) {
                    if (t.pinId() != null && attempt < UNPIN_ATTEMPTS) {
                        CompletableFuture.delayedExecutor(attempt, TimeUnit.SECONDS)
                                .execute(() -> unpinLater(t, attempt + 1));
                    } else {
                        log.warn("Unpin of a Pin of {} KV blocks at {} failed {} time(s) (they stay pinned until the "
                                + "service restarts): {}", t.blocks(), client.endpoint(), attempt, e.getMessage());
                    }
                }
            });
        } catch (RejectedExecutionException e) {
            log.debug("shutting down: the KV blocks of a Pin at {} stay pinned until the service restarts",
                    client.endpoint());
        }
    }
}
