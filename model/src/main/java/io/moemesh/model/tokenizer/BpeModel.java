package io.moemesh.model.tokenizer;

import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The BPE model of HF models/bpe/model.rs and word.rs, without dropout.
 *
 * <p>A word is first split into characters (code points), each looked up in the vocabulary; a character that is
 * missing becomes its {@code <0xNN>} byte tokens when {@code byte_fallback} is on and they all exist, otherwise
 * the unknown token (consecutive unknowns fused into one when {@code fuse_unk}), otherwise it is dropped. Then the
 * adjacent pair with the lowest merge rank is merged (leftmost first on ties) until no pair has a merge, using a
 * priority queue and a linked list of symbols as word.rs does, so a 40k-character word (llama-style has no
 * pre-tokenizer) costs O(n log n).
 */
final class BpeModel {
    /** HF's cache capacity (DEFAULT_CACHE_CAPACITY) and the longest word it caches (MAX_LENGTH). */
    private static final int CACHE_CAPACITY = 10_000;
    private static final int MAX_CACHED_LENGTH = 256;

    private final Map<String, Integer> vocab;
    private final MergeTable merges;
    private final int unkId;
    private final boolean fuseUnk;
    private final boolean ignoreMerges;
    private final String continuingSubwordPrefix;
    private final String endOfWordSuffix;
    /** Ids of {@code <0x00>..<0xFF>} when byte_fallback is on (-1 where missing), else null. */
    private final int[] byteIds;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    BpeModel(Map<String, Integer> vocab, MergeTable merges, int unkId, boolean fuseUnk, boolean byteFallback,
             boolean ignoreMerges, String continuingSubwordPrefix, String endOfWordSuffix) {
        this.vocab = Map.copyOf(vocab);
        this.merges = merges;
        this.unkId = unkId;
        this.fuseUnk = fuseUnk;
        this.ignoreMerges = ignoreMerges;
        this.continuingSubwordPrefix = continuingSubwordPrefix;
        this.endOfWordSuffix = endOfWordSuffix;
        if (byteFallback) {
            byteIds = new int[256];
            for (int b = 0; b < 256; b++) {
                byteIds[b] = vocab.getOrDefault(byteToken(b), -1);
            }
        } else {
            byteIds = null;
        }
    }

    /** Rust's {@code format!("<{b:#04X}>")}: "<0x0A>". */
    static String byteToken(int b) {
        return String.format("<0x%02X>", b);
    }

    Map<String, Integer> vocab() {
        return vocab;
    }

    /**
     * An upper bound on the UTF-8 bytes of (normalized, pre-tokenized) text one id stands for, or 0 when there is
     * none: a character missing from the vocabulary is dropped (no unknown token, no complete byte fallback), or
     * a run of them fuses into one unknown token. A vocabulary token stands for at most its own UTF-8 bytes (a
     * byte-level or byte-fallback token for fewer); an unknown token for one code point, at most 4 bytes.
     *
     * @param byteLevelInput whether every character reaching the model is a byte-level alphabet character
     */
    int maxBytesPerToken(boolean byteLevelInput) {
        int longest = 0;
        for (String token : vocab.keySet()) {
            longest = Math.max(longest, Utf8.encode(token).length);
        }
        boolean completeFallback = byteIds != null && java.util.Arrays.stream(byteIds).allMatch(id -> id >= 0);
        if (completeFallback) {
            return longest;
        }
        boolean plain = continuingSubwordPrefix == null && endOfWordSuffix == null;
        if (byteLevelInput && plain && ByteLevelAlphabet.characters().allMatch(vocab::containsKey)) {
            return longest;
        }
        if (unkId >= 0 && !fuseUnk) {
            return Math.max(longest, 4);
        }
        return 0;
    }

    /** Appends the ids of one pre-tokenized word. */
    void tokenize(String word, IntList out) {
        if (word.isEmpty()) {
            return;
        }
        if (ignoreMerges) {
            Integer id = vocab.get(word);
            if (id != null) {
                out.add(id);
                return;
            }
        }
        int[] cached = cache.get(word);
        if (cached == null) {
            cached = mergeWord(word);
            if (word.length() < MAX_CACHED_LENGTH) {
                if (cache.size() >= CACHE_CAPACITY) {
                    cache.clear();
                }
                cache.put(word, cached);
            }
        }
        out.addAll(cached);
    }

    private int[] mergeWord(String w) {
        int n = w.length();
        int[] c = new int[n];
        int count = 0;
        boolean pendingUnk = false;
        int i = 0;
        while (i < n) {
            int cp = w.codePointAt(i);
            int end = i + Character.charCount(cp);
            String s = w.substring(i, end);
            if (i > 0 && continuingSubwordPrefix != null) {
                s = continuingSubwordPrefix + s;
            }
            if (end == n && endOfWordSuffix != null) {
                s = s + endOfWordSuffix;
            }
            i = end;
            Integer id = vocab.get(s);
            if (id != null) {
                if (pendingUnk) {
                    c = push(c, count++, unkId);
                    pendingUnk = false;
                }
                c = push(c, count++, id);
                continue;
            }
            if (byteIds != null) {
                byte[] bytes = Utf8.encode(s);
                boolean all = true;
                for (byte b : bytes) {
                    all &= byteIds[b & 0xFF] >= 0;
                }
                if (all) {
                    // As in HF, a pending unknown is not flushed here: it lands after these bytes.
                    for (byte b : bytes) {
                        c = push(c, count++, byteIds[b & 0xFF]);
                    }
                    continue;
                }
            }
            if (unkId >= 0) {
                if (pendingUnk && !fuseUnk) {
                    c = push(c, count++, unkId);
                }
                pendingUnk = true;
            }
        }
        if (pendingUnk) {
            c = push(c, count++, unkId);
        }
        return mergeAll(c, count);
    }

    private static int[] push(int[] c, int at, int id) {
        int[] a = at == c.length ? Arrays.copyOf(c, c.length * 2 + 1) : c;
        a[at] = id;
        return a;
    }

    /** word.rs {@code merge_all}: lowest rank first, then lowest position. */
    private int[] mergeAll(int[] c, int n) {
        if (n < 2) {
            return Arrays.copyOf(c, n);
        }
        int[] prev = new int[n];
        int[] next = new int[n];
        boolean[] removed = new boolean[n];
        LongHeap queue = new LongHeap(n);
        for (int k = 0; k < n; k++) {
            prev[k] = k - 1;
            next[k] = k + 1 < n ? k + 1 : -1;
            if (k + 1 < n) {
                long m = merges.get(c[k], c[k + 1]);
                if (m != MergeTable.ABSENT) {
                    queue.push(entry(m, k));
                }
            }
        }
        while (!queue.isEmpty()) {
            long top = queue.pop();
            int rank = (int) (top >>> 32);
            int pos = (int) top;
            if (removed[pos] || next[pos] < 0) {
                continue;
            }
            int right = next[pos];
            long m = merges.get(c[pos], c[right]);
            // An entry is stale when one side has been merged since it was queued.
            if (m == MergeTable.ABSENT || (int) (m >>> 32) != rank) {
                continue;
            }
            c[pos] = (int) m;
            removed[right] = true;
            next[pos] = next[right];
            if (next[right] >= 0) {
                prev[next[right]] = pos;
            }
            if (prev[pos] >= 0) {
                long before = merges.get(c[prev[pos]], c[pos]);
                if (before != MergeTable.ABSENT) {
                    queue.push(entry(before, prev[pos]));
                }
            }
            if (next[pos] >= 0) {
                long after = merges.get(c[pos], c[next[pos]]);
                if (after != MergeTable.ABSENT) {
                    queue.push(entry(after, pos));
                }
            }
        }
        IntList out = new IntList(n);
        for (int k = 0; k < n; k++) {
            if (!removed[k]) {
                out.add(c[k]);
            }
        }
        return out.toArray();
    }

    /** Heap key: rank in the high half, position in the low half, so the natural order is HF's Merge order. */
    private static long entry(long merge, int pos) {
        return (merge & 0xFFFFFFFF00000000L) | pos;
    }

    /** A binary min-heap of longs. */
    private static final class LongHeap {
        private long[] heap;
        private int size;

        LongHeap(int capacity) {
            heap = new long[Math.max(4, capacity)];
        }

        boolean isEmpty() {
            return size == 0;
        }

        void push(long v) {
            if (size == heap.length) {
                heap = Arrays.copyOf(heap, size * 2);
            }
            int i = size++;
            while (i > 0) {
                int parent = (i - 1) >>> 1;
                if (heap[parent] <= v) {
                    break;
                }
                heap[i] = heap[parent];
                i = parent;
            }
            heap[i] = v;
        }

        long pop() {
            long top = heap[0];
            long last = heap[--size];
            int i = 0;
            int half = size >>> 1;
            while (i < half) {
                int child = 2 * i + 1;
                if (child + 1 < size && heap[child + 1] < heap[child]) {
                    child++;
                }
                if (last <= heap[child]) {
                    break;
                }
                heap[i] = heap[child];
                i = child;
            }
            if (size > 0) {
                heap[i] = last;
            }
            return top;
        }
    }
}
