package io.moemesh.gateway.dispatch;

import io.moemesh.service.grpc.TensorArrayPool;
import java.util.Arrays;
import java.util.Comparator;

/**
 * The replies a layer's calls got, kept per instance, then summed into the layer's output in instance order and,
 * within an instance, in the order of each reply's first pair: a function of which pairs each accepted reply carries,
 * never of the order they arrived in (a retry or a hedge can land before an earlier call of the same instance, and
 * float addition is not associative). An instance's replies come in several pieces (several messages per instance,
 * retries, hedges). Every pair is in exactly one accepted reply ({@link LayerCalls} accepts a reply only while all of
 * its pairs are still to compute), so each is summed once. Engine thread only.
 */
final class LayerReplies {
    /** One accepted reply: [tokenRows.length, hidden], taken over (given back to the pool once summed). */
    private record Piece(int firstPair, float[] result, int[] tokenRows) {
    }

    private static final Comparator<Piece> BY_FIRST_PAIR = Comparator.comparingInt(Piece::firstPair);

    private final int hidden;
    private final Piece[][] pieces;
    private final int[] count;

    LayerReplies(int instances, int hidden) {
        this.hidden = hidden;
        this.pieces = new Piece[instances][];
        this.count = new int[instances];
    }

    /**
     * Keeps {@code result} ([tokenRows.length, hidden], taken over: given back to the pool once read).
     *
     * @param firstPair the smallest pair index the reply carries (pairs are disjoint across accepted replies)
     */
    void add(int inst, float[] result, int[] tokenRows, int firstPair) {
        Piece[] ps = pieces[inst];
        if (ps == null) {
            ps = pieces[inst] = new Piece[2];
        } else if (count[inst] == ps.length) {
            ps = pieces[inst] = Arrays.copyOf(ps, ps.length * 2);
        }
        ps[count[inst]++] = new Piece(firstPair, result, tokenRows);
    }

    /** Writes the sum of every kept reply into {@code out}'s first {@code tokens} rows and gives the replies back. */
    void sumInto(float[] out, int tokens) {
        Arrays.fill(out, 0, tokens * hidden, 0f);
        for (int inst = 0; inst < pieces.length; inst++) {
            int n = count[inst];
            if (n == 0) {
                continue;
            }
            Piece[] ps = pieces[inst];
            if (n > 1) {
                Arrays.sort(ps, 0, n, BY_FIRST_PAIR);
            }
            for (int k = 0; k < n; k++) {
                Piece piece = ps[k];
                int[] rows = piece.tokenRows();
                float[] part = piece.result();
                for (int r = 0; r < rows.length; r++) {
                    int t = rows[r];
                    for (int i = 0; i < hidden; i++) {
                        out[t * hidden + i] += part[r * hidden + i];
                    }
                }
                // Summed: the reply's array (the client's, from the pool) is read no more.
                TensorArrayPool.shared().give(part);
                ps[k] = null;
            }
            count[inst] = 0;
        }
    }

    /** Gives back every kept reply without summing (the step failed). */
    void drop() {
        for (int inst = 0; inst < pieces.length; inst++) {
            for (int k = 0; k < count[inst]; k++) {
                TensorArrayPool.shared().give(pieces[inst][k].result());
                pieces[inst][k] = null;
            }
            count[inst] = 0;
        }
    }
}
