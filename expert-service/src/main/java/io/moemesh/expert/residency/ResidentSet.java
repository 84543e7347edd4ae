package io.moemesh.expert.residency;

import io.moemesh.expert.backend.LoadedExpert;
import io.moemesh.model.engine.ExpertKey;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * The experts held compute-ready, bounded by bytes of weights ({@link LoadedExpert#byteSize()}); the least
 * recently used are dropped to make room and loaded again on demand. An expert that does not fit (bigger than
 * the budget, or everything else is protected) is still returned to the caller but not kept: it is paged in
 * on use, as the contract says for assignments beyond the budget. Loads run outside the lock, at most one per
 * expert at a time, so hits never wait for another expert's load. A load that fails with a RuntimeException (the
 * weights file gone or corrupt) fails as an {@link ExpertLoadException}: the server's fault, not the caller's.
 *
 * <p>Counted for the critical path: every {@link #acquire} is a hit (resident) or a miss (the batch waits for a
 * load, whether or not a prefetch of it was queued or is loading). Counted for prefetch: experts a prefetch
 * made resident, of those the ones a batch then used before their eviction (prefetch hits), and the ones
 * evicted or dropped unused (prefetch wasted).
 */
public final class ResidentSet {
    private final long budgetBytes;
    private final Function<ExpertKey, LoadedExpert> loader;
    /** Access order: iteration starts at the least recently used. */
    private final LinkedHashMap<ExpertKey, LoadedExpert> lru = new LinkedHashMap<>(64, 0.75f, true);
    private final Map<ExpertKey, CompletableFuture<LoadedExpert>> loading = new HashMap<>();
    private Predicate<ExpertKey> admissible = k -> true;
    private long bytes;
    private long hits;
    private long misses;
    /** Made resident by a prefetch and not used by a batch since. */
    private final Set<ExpertKey> prefetchedUnused = new HashSet<>();
    private long prefetchLoads;
    private long prefetchHits;
    private long prefetchWasted;

    /** Layers of the model (0: unknown, prefetches evict like misses, least recently used first). */
    private final int layers;

    public ResidentSet(long budgetBytes, Function<ExpertKey, LoadedExpert> loader) {
        this(budgetBytes, loader, 0);
    }

    /**
     * @param layers the model's MoE layers, for the order in which a prefetch evicts (see {@link #prefetch});
     *               0 = unknown
     */
    public ResidentSet(long budgetBytes, Function<ExpertKey, LoadedExpert> loader, int layers) {
        if (budgetBytes < 0) {
            throw new IllegalArgumentException("memory budget must be >= 0 bytes, got " + budgetBytes);
        }
        if (layers < 0) {
            throw new IllegalArgumentException("layers must be >= 0, got " + layers);
        }
        this.budgetBytes = budgetBytes;
        this.loader = loader;
        this.layers = layers;
    }

    /** The expert for compute: a hit, or a miss that loads it (and keeps it if it fits). */
    public LoadedExpert acquire(ExpertKey key) {
        synchronized (this) {
            LoadedExpert e = lru.get(key);
            if (e != null) {
                hits++;
                if (prefetchedUnused.remove(key)) {
                    prefetchHits++;
                }
                return e;
            }
            misses++;
        }
        return loadAndAdmit(key, Set.of(), Use.BATCH).expert();
    }

    /** Who admits an expert: a batch that uses it now, a prefetch ahead of use, or an assignment's preload. */
    private enum Use {
        BATCH, PREFETCH, PRELOAD
    }

    /** A loaded expert, and whether it is resident now. */
    private record Admitted(LoadedExpert expert, boolean kept) {
    }

    /**
     * Makes an expert resident ahead of use (not counted as a hit or miss); true if it is resident now. Every step
     * visits the layers in order, 0 to L − 1, so when the layers are known a prefetch for layer p evicts by
     * Belady's rule, the expert whose next use is furthest away first: layers p − 2, p − 3, … down the cycle to
     * p + 1 (least recently used first within a layer), and only then layer p − 1 (its batch may be arriving now:
     * the gateway sends the hint just before it) and last layer p (needed as soon as the prefetched one).
     * Least-recently-used eviction would pick exactly layer p − 1 first in a cyclic walk.
     */
    public boolean prefetch(ExpertKey key) {
        if (isResident(key)) {
            return true;
        }
        return loadAndAdmit(key, Set.of(), Use.PREFETCH).kept();
    }

    /**
     * Loads {@code keys} in order until the budget is full, never evicting one of them for another: the rest
     * stay unloaded (paged in on use). Returns how many of {@code keys} are resident afterwards.
     */
    public int preload(Collection<ExpertKey> keys) {
        Set<ExpertKey> kept = new HashSet<>();
        for (ExpertKey k : keys) {
            synchronized (this) {
                if (lru.get(k) != null) {
                    kept.add(k);
                    continue;
                }
            }
            if (!loadAndAdmit(k, kept, Use.PRELOAD).kept()) {
                break;
            }
            kept.add(k);
        }
        return kept.size();
    }

    /**
     * From now on only experts matching {@code keep} may be resident; the others are dropped now (and a load in
     * progress for one of them is not kept when it completes).
     */
    public synchronized void restrictTo(Predicate<ExpertKey> keep) {
        admissible = keep;
        lru.entrySet().removeIf(en -> {
            boolean drop = !keep.test(en.getKey());
            if (drop) {
                bytes -= en.getValue().byteSize();
                dropped(en.getKey());
            }
            return drop;
        });
    }

    /**
     * Loads {@code key}, or joins the load of it already under way, and admits it ({@link #admit}). The thread that
     * loads admits before it hands the expert to the threads that joined its load: a batch that joined a prefetch's
     * load finds it kept by the prefetch, and uses it.
     */
    private Admitted loadAndAdmit(ExpertKey key, Set<ExpertKey> protect, Use use) {
        CompletableFuture<LoadedExpert> f;
        boolean mine = false;
        synchronized (this) {
            f = loading.get(key);
            if (f == null) {
                f = new CompletableFuture<>();
                loading.put(key, f);
                mine = true;
            }
        }
        if (!mine) {
            LoadedExpert e;
            try {
                e = f.join();
            } catch (CompletionException failed) {
                if (failed.getCause() instanceof Error err) {
                    throw err;
                }
                throw failed.getCause() instanceof RuntimeException r ? r : failed;
            }
            return new Admitted(e, admit(e, protect, use));
        }
        try {
            LoadedExpert e;
            try {
                e = loader.apply(key);
            } catch (ExpertLoadException already) {
                throw already;
            } catch (RuntimeException notLoaded) {
                // A ModelFormatException (an IllegalArgumentException: INVALID_ARGUMENT) or UncheckedIOException of
                // the weights file: the key was checked before, so the server's fault, answered INTERNAL.
                throw new ExpertLoadException(key, notLoaded);
            }
            boolean kept = admit(e, protect, use);
            f.complete(e);
            return new Admitted(e, kept);
        } catch (Throwable t) {
            // Any Throwable, not only RuntimeException: an Error (InternalError from MemorySegment.load on a
            // truncated file, OutOfMemoryError) left uncompleted would hang every thread already in join() forever.
            f.completeExceptionally(t);
            throw t;
        } finally {
            synchronized (this) {
                loading.remove(key);
            }
        }
    }

    /** An expert leaves the set: a prefetched one that no batch used was a wasted prefetch. */
    private void dropped(ExpertKey key) {
        if (prefetchedUnused.remove(key)) {
            prefetchWasted++;
        }
    }

    /**
     * Keeps {@code e} if admissible and it fits after evicting LRU experts outside {@code protect}.
     *
     * @param use who admits it: a prefetch's is counted as a prefetch load when it is kept
     */
    private synchronized boolean admit(LoadedExpert e, Set<ExpertKey> protect, Use use) {
        ExpertKey key = e.key();
        boolean byPrefetch = use == Use.PREFETCH;
        if (lru.get(key) != null) {
            // Already kept. By a prefetch whose load this batch joined (it missed while the prefetch was loading,
            // and the loading thread admits first): the batch uses it now, so the prefetch was used, a prefetch hit
            // as well as the batch's miss, and no waste when it is evicted later.
            if (use == Use.BATCH && prefetchedUnused.remove(key)) {
                prefetchHits++;
            }
            return true;
        }
        long size = e.byteSize();
        if (!admissible.test(key) || size > budgetBytes) {
            return false;
        }
        if (byPrefetch && layers > 0) {
            return admitPrefetched(key, e);
        }
        long evictable = 0;
        for (Map.Entry<ExpertKey, LoadedExpert> en : lru.entrySet()) {
            if (!protect.contains(en.getKey())) {
                evictable += en.getValue().byteSize();
            }
        }
        if (bytes - evictable + size > budgetBytes) {
            return false;
        }
        for (Iterator<Map.Entry<ExpertKey, LoadedExpert>> it = lru.entrySet().iterator();
             bytes + size > budgetBytes && it.hasNext(); ) {
            Map.Entry<ExpertKey, LoadedExpert> en = it.next();
            if (!protect.contains(en.getKey())) {
                bytes -= en.getValue().byteSize();
                it.remove();
                dropped(en.getKey());
            }
        }
        lru.put(key, e);
        bytes += size;
        if (byPrefetch) {
            prefetchLoads++;
            prefetchedUnused.add(key);
        }
        return true;
    }

    /** A prefetch's admission by the cyclic rule of {@link #prefetch}; called with the lock held. */
    private boolean admitPrefetched(ExpertKey key, LoadedExpert e) {
        int p = key.layer();
        long size = e.byteSize();
        // Everything may go (size <= budget was checked), in order of eviction rank; the sort is stable, so least
        // recently used first within a layer.
        List<ExpertKey> victims = new ArrayList<>(lru.keySet());
        victims.sort((a, b) -> Integer.compare(evictionRank(a.layer(), p), evictionRank(b.layer(), p)));
        for (int i = 0; bytes + size > budgetBytes; i++) {
            ExpertKey v = victims.get(i);
            bytes -= lru.remove(v).byteSize();
            dropped(v);
        }
        lru.put(key, e);
        bytes += size;
        prefetchLoads++;
        prefetchedUnused.add(key);
        return true;
    }

    /**
     * Lower goes first when a prefetch for layer {@code p} needs room: layers p − 2, p − 3, … p + 1 (furthest next
     * use first), then p − 1, then p.
     */
    private int evictionRank(int layer, int p) {
        int ahead = Math.floorMod(layer - p, layers);
        if (ahead == 0) {
            return layers + 1;
        }
        if (ahead == layers - 1) {
            return layers;
        }
        return layers - ahead;
    }

    /**
     * The experts of {@code keys}, every one a hit, taken in one step under the lock (counted as hits), in the
     * order of {@code keys}; null when any is not resident (nothing counted): a caller that must not load (a batch
     * computed on an event loop) gets experts no eviction can take from it between a residency check and the
     * compute.
     */
    public synchronized LoadedExpert[] acquireIfAllResident(ExpertKey[] keys) {
        LoadedExpert[] out = new LoadedExpert[keys.length];
        for (int i = 0; i < keys.length; i++) {
            out[i] = lru.get(keys[i]); // a hit would make it most recently used, as acquire does
            if (out[i] == null) {
                return null;
            }
        }
        for (ExpertKey k : keys) {
            hits++;
            if (prefetchedUnused.remove(k)) {
                prefetchHits++;
            }
        }
        return out;
    }

    public synchronized boolean isResident(ExpertKey key) {
        return lru.containsKey(key);
    }

    /** Resident experts, ascending by (layer, expert). */
    public synchronized List<ExpertKey> residentExperts() {
        List<ExpertKey> keys = new ArrayList<>(lru.keySet());
        keys.sort(null);
        return keys;
    }

    public synchronized long residentBytes() {
        return bytes;
    }

    public long budgetBytes() {
        return budgetBytes;
    }

    public synchronized long hits() {
        return hits;
    }

    public synchronized long misses() {
        return misses;
    }

    /** Experts a prefetch made resident. */
    public synchronized long prefetchLoads() {
        return prefetchLoads;
    }

    /** Prefetched experts a batch used before they were evicted (each counted once, at its first use). */
    public synchronized long prefetchHits() {
        return prefetchHits;
    }

    /** Prefetched experts evicted or dropped before any batch used them. */
    public synchronized long prefetchWasted() {
        return prefetchWasted;
    }
}
