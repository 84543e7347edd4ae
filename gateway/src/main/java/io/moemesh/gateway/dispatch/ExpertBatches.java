package io.moemesh.gateway.dispatch;

import io.moemesh.service.expert.ExpertCall;
import io.moemesh.service.settings.SettingRefusedException;
import java.util.ArrayList;
import java.util.List;

/**
 * The {@code ExpertBatch} messages of one layer for one instance: its pending pairs, a row per token that has any,
 * cut into messages of at most {@code maxRows} rows. gRPC refuses an inbound message over the channel's limit
 * with RESOURCE_EXHAUSTED and ends the whole stream, failing every call on it (the other micro-batch's too): a
 * long prompt chunk sent as one message would fail the step on a healthy instance, and count against its breaker.
 * {@link #maxRowsPerCall} is the cut that keeps both the request and its reply within the limit.
 */
public final class ExpertBatches {
    /**
     * Bytes of a message besides its rows: ids, layer, epoch, dtype, shape, status, the packed fields' length
     * prefixes and the trace context (a traceparent of 55 characters, a tracestate of at most 512): well below this.
     */
    private static final int HEADROOM_BYTES = 4096;
    /** Bytes per pair in a request at most: the expert id (a varint of up to 5 bytes) and its float weight. */
    private static final int PAIR_BYTES = 5 + 4;
    /** Bytes of a row's pair count (a varint) at most. */
    private static final int COUNT_BYTES = 5;

    private ExpertBatches() {
    }

    /** One message and where its rows come from: {@code tokenRows[r]} is row r's token, {@code pairs} its pairs. */
    record Batch(ExpertCall call, int[] tokenRows, int[] pairs) {
    }

    /**
     * The most token rows one message may carry so that the request (activations and pairs) and the reply (one
     * output row per token) each fit in {@code maxMessageBytes}, the gateway's inbound limit: a reply larger than
     * it breaks the stream, and the expert-service's own limit is larger by default (256 MiB against 64 MiB).
     *
     * @param elementBytes bytes per value on the wire (4 for f32, 2 for bf16)
     * @param pairsPerRow  the most (expert, weight) pairs a token sends to one instance (top-k plus shared experts)
     * @throws SettingRefusedException naming both settings when not even one row fits (refused at startup)
     */
    public static int maxRowsPerCall(int maxMessageBytes, int hidden, int elementBytes, int pairsPerRow) {
        long rowBytes = (long) hidden * elementBytes + COUNT_BYTES + (long) pairsPerRow * PAIR_BYTES;
        long rows = (maxMessageBytes - (long) HEADROOM_BYTES) / rowBytes;
        if (rows < 1) {
            throw new SettingRefusedException("moemesh.gateway.max-inbound-message-bytes",
                    "moemesh.gateway.max-inbound-message-bytes (" + maxMessageBytes
                    + ") cannot hold one token row of this model (hidden size " + hidden + ") in moemesh.gateway"
                    + ".dispatch.wire-dtype " + (elementBytes == 2 ? "bf16" : "f32") + ": it needs at least "
                    + (HEADROOM_BYTES + rowBytes) + " bytes");
        }
        return (int) Math.min(Integer.MAX_VALUE, rows);
    }

    /**
     * The messages carrying {@code inst}'s pending pairs ({@code target[p] == inst}), in token order, each of at most
     * {@code maxRows} rows; empty when it has none. A token's pairs at the instance always travel together (the
     * instance sums them into one output row).
     */
    static List<Batch> forInstance(long epoch, int inst, int layer, float[] x, int hidden, int tokens, int[] experts,
                                   float[] weights, int perToken, int[] target, boolean[] pending, int maxRows) {
        int[] rowsOf = new int[tokens];
        int rows = 0;
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < perToken; j++) {
                int p = t * perToken + j;
                if (pending[p] && target[p] == inst) {
                    rowsOf[rows++] = t;
                    break;
                }
            }
        }
        List<Batch> out = new ArrayList<>(rows == 0 ? 0 : 1 + (rows - 1) / maxRows);
        for (int from = 0; from < rows; from += Math.min(maxRows, rows - from)) {
            out.add(batch(epoch, inst, layer, x, hidden, rowsOf, from, from + Math.min(maxRows, rows - from), experts,
                    weights, perToken, target, pending));
        }
        return out;
    }

    private static Batch batch(long epoch, int inst, int layer, float[] x, int hidden, int[] rowsOf, int from, int to,
                               int[] experts, float[] weights, int perToken, int[] target, boolean[] pending) {
        int rows = to - from;
        int pairs = 0;
        for (int r = from; r < to; r++) {
            for (int j = 0; j < perToken; j++) {
                int p = rowsOf[r] * perToken + j;
                if (pending[p] && target[p] == inst) {
                    pairs++;
                }
            }
        }
        float[] act = new float[rows * hidden];
        int[] tokenRows = new int[rows];
        int[] counts = new int[rows];
        int[] ex = new int[pairs];
        float[] w = new float[pairs];
        int[] pairIds = new int[pairs];
        int q = 0;
        for (int r = 0; r < rows; r++) {
            int t = rowsOf[from + r];
            for (int j = 0; j < perToken; j++) {
                int p = t * perToken + j;
                if (pending[p] && target[p] == inst) {
                    ex[q] = experts[p];
                    w[q] = weights[p];
                    pairIds[q++] = p;
                    counts[r]++;
                }
            }
            System.arraycopy(x, t * hidden, act, r * hidden, hidden);
            tokenRows[r] = t;
        }
        return new Batch(new ExpertCall(epoch, layer, act, rows, hidden, counts, ex, w), tokenRows, pairIds);
    }
}
