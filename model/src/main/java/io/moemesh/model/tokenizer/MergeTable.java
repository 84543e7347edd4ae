package io.moemesh.model.tokenizer;

import java.util.Arrays;

/**
 * The BPE merge map {@code (left id, right id) -> (rank, merged id)} as an open-addressing table over packed
 * longs, so the merge loop does no boxing or allocation (a 150k-merge vocabulary is 256k slots, 4 MB).
 */
final class MergeTable {
    static final long ABSENT = -1L;

    private final long[] keys;
    private final long[] values;
    private final int mask;
    private int size;

    MergeTable(int expected) {
        int cap = Integer.highestOneBit(Math.max(4, expected * 2 - 1)) << 1;
        keys = new long[cap];
        values = new long[cap];
        Arrays.fill(keys, ABSENT);
        mask = cap - 1;
    }

    static long pair(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFFFFFFL);
    }

    /** Adds or replaces (a later duplicate of a merge wins, as in HF's HashMap collect). */
    void put(int left, int right, int rank, int mergedId) {
        long key = pair(left, right);
        int i = slot(key);
        if (keys[i] == ABSENT) {
            keys[i] = key;
            size++;
        }
        values[i] = ((long) rank << 32) | (mergedId & 0xFFFFFFFFL);
    }

    /** {@code rank << 32 | mergedId}, or {@link #ABSENT}. */
    long get(int left, int right) {
        long key = pair(left, right);
        int i = slot(key);
        return keys[i] == ABSENT ? ABSENT : values[i];
    }

    int size() {
        return size;
    }

    private int slot(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        int i = (int) (h ^ (h >>> 29)) & mask;
        while (keys[i] != ABSENT && keys[i] != key) {
            i = (i + 1) & mask;
        }
        return i;
    }
}
