package io.moemesh.model.engine;

import java.util.Arrays;

/**
 * One sequence's block table: entry i is the {@link BlockPool} block of its i-th block of positions (counted from
 * its remote prefix, see {@link KvCache#blockTable}). Both caches keep one per sequence. The engine reads
 * {@link #entries} directly, once per step, so the table is a growable int array rather than a list.
 */
public final class BlockTable {
    private int[] blocks = new int[8];
    private int size;

    /** Appends a block (doubling the array when full: a long sequence grows its table O(log n) times). */
    public void add(int block) {
        if (size == blocks.length) {
            blocks = Arrays.copyOf(blocks, size * 2);
        }
        blocks[size++] = block;
    }

    public int size() {
        return size;
    }

    public int get(int i) {
        if (i < 0 || i >= size) {
            throw new IndexOutOfBoundsException("entry " + i + " of a block table of " + size);
        }
        return blocks[i];
    }

    /**
     * The backing array, what {@link KvCache#blockTable} returns: entries [0, {@link #size}) are the table, those
     * after it are stale. A later {@link #add} may replace the array, so readers take it once per step.
     */
    public int[] entries() {
        return blocks;
    }

    /** Drops the first {@code n} entries (they went to a remote prefix); the rest move to the front. */
    public void removeFirst(int n) {
        if (n < 0 || n > size) {
            throw new IllegalArgumentException("cannot remove " + n + " entries of a block table of " + size);
        }
        System.arraycopy(blocks, n, blocks, 0, size - n);
        size -= n;
    }
}
