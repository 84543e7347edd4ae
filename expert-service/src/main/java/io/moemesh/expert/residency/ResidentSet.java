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
 * expert at a time, so hits never wait for another expert's load.
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

    public ResidentSet(long budgetBytes, Function<ExpertKey, LoadedExpert> loader) {
        if (budgetBytes < 0) {
            throw new IllegalArgumentException("memory budget must be >= 0 bytes, got " + budgetBytes);
        }
        this.budgetBytes = budgetBytes;
        this.loader = loader;
    }

    /** The expert for compute: a hit, or a miss that loads it (and keeps it if it fits). */
    public LoadedExpert acquire(ExpertKey key) {
        synchronized (this) {
            LoadedExpert e = lru.get(key);
            if (e != null) {
                hits++;
                return e;
            }
            misses++;
        }
        LoadedExpert e = loadOnce(key);
        admit(e, Set.of());
        return e;
    }

    /** Makes an expert resident ahead of use (not counted as a hit or miss); true if it is resident now. */
    public boolean prefetch(ExpertKey key) {
        if (isResident(key)) {
            return true;
        }
        return admit(loadOnce(key), Set.of());
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
            if (!admit(loadOnce(k), kept)) {
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
            }
            return drop;
        });
    }

    private LoadedExpert loadOnce(ExpertKey key) {
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
            try {
                return f.join();
            } catch (CompletionException e) {
                throw e.getCause() instanceof RuntimeException r ? r : e;
            }
        }
        try {
            LoadedExpert e = loader.apply(key);
            f.complete(e);
            return e;
        } catch (RuntimeException e) {
            f.completeExceptionally(e);
            throw e;
        } finally {
            synchronized (this) {
                loading.remove(key);
            }
        }
    }

    /** Keeps {@code e} if admissible and it fits after evicting LRU experts outside {@code protect}. */
    private synchronized boolean admit(LoadedExpert e, Set<ExpertKey> protect) {
        ExpertKey key = e.key();
        if (lru.get(key) != null) {
            return true;
        }
        long size = e.byteSize();
        if (!admissible.test(key) || size > budgetBytes) {
            return false;
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
            }
        }
        lru.put(key, e);
        bytes += size;
        return true;
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
}
