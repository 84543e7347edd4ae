package io.moemesh.model.kv;

import java.util.Arrays;

/**
 * The cached blocks no sequence holds, least recently released first (vLLM's free-block queue, restricted to
 * blocks with a hash): an intrusive doubly linked list over block ids, so taking a block back out of the middle
 * when a prefix hit references it again is O(1) and allocates nothing.
 */
final class BlockLru {
    private static final int NONE = -1;
    private final int[] prev;
    private final int[] next;
    private final boolean[] member;
    private int head = NONE;
    private int tail = NONE;
    private int size;

    BlockLru(int blocks) {
        prev = new int[blocks];
        next = new int[blocks];
        member = new boolean[blocks];
        Arrays.fill(prev, NONE);
        Arrays.fill(next, NONE);
    }

    /** Appends as the most recently used. */
    void addLast(int block) {
        if (member[block]) {
            throw new IllegalStateException("block " + block + " is already in the LRU");
        }
        member[block] = true;
        prev[block] = tail;
        next[block] = NONE;
        if (tail == NONE) {
            head = block;
        } else {
            next[tail] = block;
        }
        tail = block;
        size++;
    }

    void remove(int block) {
        if (!member[block]) {
            throw new IllegalStateException("block " + block + " is not in the LRU");
        }
        int p = prev[block];
        int n = next[block];
        if (p == NONE) {
            head = n;
        } else {
            next[p] = n;
        }
        if (n == NONE) {
            tail = p;
        } else {
            prev[n] = p;
        }
        prev[block] = NONE;
        next[block] = NONE;
        member[block] = false;
        size--;
    }

    /** Removes and returns the least recently used block. */
    int pollFirst() {
        if (head == NONE) {
            throw new IllegalStateException("the LRU is empty");
        }
        int b = head;
        remove(b);
        return b;
    }

    boolean contains(int block) {
        return member[block];
    }

    int size() {
        return size;
    }

    /** Block ids, least recently used first (tests and audits). */
    int[] toArray() {
        int[] out = new int[size];
        int i = 0;
        for (int b = head; b != NONE; b = next[b]) {
            out[i++] = b;
        }
        return out;
    }
}
