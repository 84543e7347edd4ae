package io.moemesh.kvcache.tier;

import io.moemesh.kvcache.block.BlockKey;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.function.BooleanSupplier;

/**
 * The pins of one model's store, taken by Pin calls, with what each call pinned under the id its client chose
 * (kvcache.v1 {@code PinRequest.pin_id}). Why: pins nest, so a client that does not know whether its Pin ran (its
 * deadline passed, the connection was reset, the reply did not fit) may not unpin the hashes blindly: when the Pin
 * never ran, that would release another sequence's pin of a shared prefix block; when it did run and the client does
 * nothing, the blocks stay unevictable until the service restarts and the tiers fill. With an id the client unpins
 * exactly what that Pin pinned, nothing when it never ran; and an Unpin that overtakes its Pin leaves a tombstone, so
 * the Pin pins nothing when it arrives.
 *
 * <p>A Pin checks its call's cancellation before each block and once all are pinned: a cancelled call (the caller gave
 * up, or its deadline passed while the Pin waited for the store's lock) releases what it pinned, forgets its id and
 * throws {@link CancellationException}. A cancellation after the last check (the deadline passing while the answer
 * is on its way) cannot be seen here: the answer is dropped and the pins stay, until an Unpin of the id (the
 * gateway sends one after any Pin that failed on its side).
 *
 * <p>A store whose pin throws (an I/O error reading a block's tier) leaves nothing behind either: the Pin releases
 * what it pinned, forgets its id (a retry runs anew) and rethrows.
 *
 * <p>Each pin is recorded with the generation of the block's run of pins ({@link TieredKvStore#pinGeneration}) and
 * released only from that run ({@link TieredKvStore#unpin(BlockKey, long)}): a block whose copy was dropped (a bad
 * CRC32C on a read) lost its pins with it, and once it is stored and pinned again by another Pin, an Unpin of this
 * id must release nothing of that Pin's.
 *
 * <p>Bounds (the ids' memory): at most {@code maxHeldBlocks} hashes across the live ids (those pinned and not yet
 * unpinned, each Pin counting all its hashes; a Pin with an id and no hashes is refused, as it would count none), a
 * Pin past it is refused ({@link LimitException}, nothing pinned);
 * the last {@code maxReleasedIds} ids unpinned (or named by an Unpin before their Pin) are remembered, older ones
 * forgotten: a Pin of such an id arriving later still would pin as a new id. The gateway's Pins are bounded by its
 * offload timeout and cancelled server-side once past it, so a Pin overtaken by more than that many releases cannot
 * happen in practice. Everything is forgotten on restart, as the pins are.
 *
 * <p>Thread-safe: the ledger's monitor guards the ids; the store's pin and unpin run outside it.
 */
public final class PinLedger {
    /** Bytes of a pin id. */
    public static final int PIN_ID_BYTES = 16;
    /** Default of {@code maxHeldBlocks}: 262,144 hashes (4M positions at 16 tokens a block; about 20 MB). */
    public static final int MAX_HELD_BLOCKS = 262_144;
    /** Default of {@code maxReleasedIds}: 16,384 ids. */
    public static final int MAX_RELEASED_IDS = 16_384;

    private final TieredKvStore store;
    private final int maxHeldBlocks;
    private final Map<PinId, Entry> live = new HashMap<>();
    private final Map<PinId, Boolean> released;
    private long heldBlocks;

    /** A Pin refused because it would pass {@code maxHeldBlocks} (RESOURCE_EXHAUSTED on the wire). */
    public static final class LimitException extends RuntimeException {
        LimitException(String message) {
            super(message);
        }
    }

    /** A Pin of an id an Unpin released (before or while it ran): nothing stays pinned (ABORTED on the wire). */
    public static final class AbortedException extends RuntimeException {
        AbortedException(String message) {
            super(message);
        }
    }

    private record PinId(long high, long low) {
        static PinId of(byte[] id) {
            if (id.length != PIN_ID_BYTES) {
                throw new IllegalArgumentException("pin_id: a pin id has " + PIN_ID_BYTES + " bytes, got " + id.length);
            }
            ByteBuffer b = ByteBuffer.wrap(id);
            return new PinId(b.getLong(), b.getLong());
        }
    }

    /** One pin taken: the block and the generation of the run of pins it joined. */
    private record Held(BlockKey key, long generation) {
    }

    /** One live id. */
    private static final class Entry {
        final List<BlockKey> keys;
        /** Pins this id took: written by its Pin only while it runs, then read under the ledger's monitor. */
        final List<Held> pinned = new ArrayList<>();
        /** The Pin's answer once it finished (under the monitor); null while it runs. */
        List<Boolean> answer;
        /** An Unpin named the id while its Pin ran: the Pin releases its own pins when it sees it. */
        volatile boolean unpinRequested;

        Entry(List<BlockKey> keys) {
            this.keys = List.copyOf(keys);
        }
    }

    public PinLedger(TieredKvStore store) {
        this(store, MAX_HELD_BLOCKS, MAX_RELEASED_IDS);
    }

    public PinLedger(TieredKvStore store, int maxHeldBlocks, int maxReleasedIds) {
        if (maxHeldBlocks < 1 || maxReleasedIds < 1) {
            throw new IllegalArgumentException("a pin ledger needs room for a block and an id, got " + maxHeldBlocks
                    + " and " + maxReleasedIds);
        }
        this.store = store;
        this.maxHeldBlocks = maxHeldBlocks;
        this.released = new LinkedHashMap<>(16, 0.75f, false) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<PinId, Boolean> eldest) {
                return size() > maxReleasedIds;
            }
        };
    }

    /**
     * Pins each block once, in order, checking {@code cancelled} before each and at the end.
     *
     * @param pinId     the client's 16-byte id of this Pin, or null for none (then no retry or Unpin by id is possible)
     * @param cancelled whether the call was cancelled (the caller gave up or its deadline passed)
     * @return per key, whether it was stored and is now pinned
     * @throws CancellationException    when the call was cancelled: nothing this call pinned stays pinned
     * @throws AbortedException         when an Unpin of the id came first or while it ran: nothing stays pinned
     * @throws LimitException           when the id would pass the held blocks' bound: nothing pinned
     * @throws IllegalArgumentException when the id is not 16 bytes, names a Pin of other blocks, or comes with no
     *                                  keys
     * @throws RuntimeException         what the store's pin threw: nothing this call pinned stays pinned, the id is
     *                                  forgotten
     */
    public List<Boolean> pin(byte[] pinId, List<BlockKey> keys, BooleanSupplier cancelled) {
        if (pinId == null) {
            List<Held> pinned = new ArrayList<>();
            List<Boolean> answer;
            try {
                answer = pinAll(keys, cancelled, pinned, null);
            } catch (RuntimeException failed) {
                release(pinned, failed);
                throw failed;
            }
            if (answer == null || cancelled.getAsBoolean()) {
                pinned.forEach(this::unpin);
                throw cancelledAfter(pinned.size(), keys.size());
            }
            return answer;
        }
        PinId id = PinId.of(pinId);
        if (keys.isEmpty()) {
            // It would pin nothing, yet stay live under its id counting 0 against maxHeldBlocks: distinct ids of empty
            // Pins would grow the ledger without bound.
            throw new IllegalArgumentException("block_hashes: a Pin with a pin_id must name at least one block hash");
        }
        Entry e;
        synchronized (this) {
            if (released.containsKey(id)) {
                throw new AbortedException("pin_id: an Unpin of this pin id came first; nothing pinned");
            }
            e = live.get(id);
            if (e != null) {
                if (!e.keys.equals(keys)) {
                    throw new IllegalArgumentException("pin_id: already the id of a Pin of other blocks; a pin id "
                            + "names one Pin (choose a new random one per Pin)");
                }
                if (e.answer == null) {
                    throw new AbortedException("pin_id: a Pin of this pin id is still running");
                }
                return e.answer;
            }
            if (heldBlocks + keys.size() > maxHeldBlocks) {
                throw new LimitException("pin_id: " + heldBlocks + " blocks are held under pin ids of this model and "
                        + "this Pin names " + keys.size() + ", past the most the service keeps (" + maxHeldBlocks
                        + "); nothing pinned");
            }
            e = new Entry(keys);
            live.put(id, e);
            heldBlocks += keys.size();
        }
        List<Boolean> answer;
        try {
            answer = pinAll(keys, cancelled, e.pinned, e);
        } catch (RuntimeException failed) {
            // Else the id would stay live with no answer for ever: its pins held, its blocks counted, a retry
            // ABORTED and an Unpin of it releasing nothing.
            synchronized (this) {
                forget(id, e, e.unpinRequested);
            }
            release(e.pinned, failed);
            throw failed;
        }
        RuntimeException refusal;
        synchronized (this) {
            if (e.unpinRequested) {
                refusal = new AbortedException("pin_id: an Unpin of this pin id came while the Pin ran; nothing stays "
                        + "pinned");
                forget(id, e, true);
            } else if (answer == null || cancelled.getAsBoolean()) {
                refusal = cancelledAfter(e.pinned.size(), keys.size());
                forget(id, e, false);
            } else {
                e.answer = List.copyOf(answer);
                return e.answer;
            }
        }
        e.pinned.forEach(this::unpin);
        throw refusal;
    }

    /**
     * Pins the keys into {@code pinned} until done, cancelled or (with an entry) an Unpin of its id: the answer, or
     * null when it stopped early.
     */
    private List<Boolean> pinAll(List<BlockKey> keys, BooleanSupplier cancelled, List<Held> pinned, Entry e) {
        List<Boolean> answer = new ArrayList<>(keys.size());
        for (BlockKey k : keys) {
            if (cancelled.getAsBoolean() || e != null && e.unpinRequested) {
                return null;
            }
            long generation = store.pinGeneration(k);
            if (generation >= 0) {
                pinned.add(new Held(k, generation));
            }
            answer.add(generation >= 0);
        }
        return answer;
    }

    /** Releases one pin this ledger took, only from the run of pins it joined. */
    private boolean unpin(Held h) {
        return store.unpin(h.key(), h.generation());
    }

    /** Releases the pins a Pin that failed took; a failure to release is added to {@code failed}. */
    private void release(List<Held> pinned, Throwable failed) {
        for (Held h : pinned) {
            try {
                unpin(h);
            } catch (RuntimeException e) {
                failed.addSuppressed(e);
            }
        }
    }

    private static CancellationException cancelledAfter(int pinned, int keys) {
        return new CancellationException("Pin: the call was cancelled (by the caller or its deadline) after "
                + pinned + " of " + keys + " blocks were pinned; they were released, nothing stays pinned");
    }

    /** Under the monitor: the id is no longer live; a tombstone when {@code tombstone} (an Unpin named it). */
    private void forget(PinId id, Entry e, boolean tombstone) {
        live.remove(id);
        heldBlocks -= e.keys.size();
        if (tombstone) {
            released.put(id, Boolean.TRUE);
        }
    }

    /**
     * Releases exactly the pins the Pin of {@code pinId} took. An id no Pin used yet is remembered, so its Pin pins
     * nothing when it comes; one whose Pin still runs is marked, and that Pin releases its own pins when it sees it.
     * A pin that is gone already (its block's copy dropped, its pins with it) is not released again: the block's pins
     * now, if any, are another Pin's.
     *
     * @return pins released now (0 when the Pin never ran, still runs, or its id was unpinned before)
     * @throws IllegalArgumentException when the id is not 16 bytes
     */
    public int unpin(byte[] pinId) {
        PinId id = PinId.of(pinId);
        List<Held> pinned;
        synchronized (this) {
            Entry e = live.get(id);
            if (e == null) {
                released.put(id, Boolean.TRUE);
                return 0;
            }
            if (e.answer == null) {
                e.unpinRequested = true;
                return 0;
            }
            forget(id, e, true);
            pinned = e.pinned;
        }
        int n = 0;
        for (Held h : pinned) {
            n += unpin(h) ? 1 : 0;
        }
        return n;
    }

    /** Ids live now: pinned and not yet unpinned, or their Pin still running. */
    public synchronized int liveIds() {
        return live.size();
    }

    /** Blocks held under live ids now (each Pin counting all its hashes). */
    public synchronized long heldBlocks() {
        return heldBlocks;
    }
}
