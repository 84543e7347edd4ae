package io.moemesh.gateway.dispatch;

import io.moemesh.service.grpc.TensorArrayPool;
import java.util.Arrays;

/**
 * The replies a layer's calls got, kept per instance and token row, then summed into the layer's output in instance
 * order (deterministic whatever order they arrived in). An instance's replies arrive in several pieces (several
 * messages per instance, retries and hedges): each is appended to that instance's rows. Every pair is in exactly one
 * accepted reply ({@link LayerCalls} accepts a reply only while all of its pairs are still to compute), so each is
 * summed once. Engine thread only.
 */
final class LayerReplies {
    private final int hidden;
    private final float[][] partial;
    private final int[][] rowsOf;

    LayerReplies(int instances, int hidden) {
        this.hidden = hidden;
        this.partial = new float[instances][];
        this.rowsOf = new int[instances][];
    }

    /** Keeps {@code result} ([tokenRows.length, hidden], taken over: given back to the pool once read). */
    void add(int inst, float[] result, int[] tokenRows) {
        if (partial[inst] == null) {
            partial[inst] = result;
            rowsOf[inst] = tokenRows;
            return;
        }
        int[] rows = Arrays.copyOf(rowsOf[inst], rowsOf[inst].length + tokenRows.length);
        System.arraycopy(tokenRows, 0, rows, rowsOf[inst].length, tokenRows.length);
        float[] p = Arrays.copyOf(partial[inst], rows.length * hidden);
        System.arraycopy(result, 0, p, rowsOf[inst].length * hidden, tokenRows.length * hidden);
        // Copied: the replies' arrays (the client's, from the pool) are read no more.
        TensorArrayPool.shared().give(partial[inst]);
        TensorArrayPool.shared().give(result);
        partial[inst] = p;
        rowsOf[inst] = rows;
    }

    /** Writes the sum of every kept reply into {@code out}'s first {@code tokens} rows and gives the replies back. */
    void sumInto(float[] out, int tokens) {
        Arrays.fill(out, 0, tokens * hidden, 0f);
        for (int inst = 0; inst < partial.length; inst++) {
            if (partial[inst] == null) {
                continue;
            }
            int[] rows = rowsOf[inst];
            for (int r = 0; r < rows.length; r++) {
                int t = rows[r];
                for (int i = 0; i < hidden; i++) {
                    out[t * hidden + i] += partial[inst][r * hidden + i];
                }
            }
            // Summed: the reply's array (the client's, from the pool) is read no more.
            TensorArrayPool.shared().give(partial[inst]);
            partial[inst] = null;
        }
    }

    /** Gives back every kept reply without summing (the step failed). */
    void drop() {
        for (int inst = 0; inst < partial.length; inst++) {
            TensorArrayPool.shared().give(partial[inst]);
            partial[inst] = null;
        }
    }
}
