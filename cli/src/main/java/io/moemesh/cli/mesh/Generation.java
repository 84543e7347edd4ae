package io.moemesh.cli.mesh;

import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.gateway.v1.LayerRoutes;
import io.moemesh.proto.gateway.v1.TraceInfo;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * A finished Generate call as the CLI prints it.
 *
 * @param generatedIds all streamed token ids, in order
 * @param text         the streamed text deltas joined
 * @param finishReason "stop", "length" or "cancelled" (a CANCELLED that carries an error status, a shutting-down
 *                     gateway's, fails the call instead: {@link GatewayClient#generate})
 * @param trace        the final message's trace: input_ids always, the rest when the request asked for it
 */
public record Generation(String requestId, int[] generatedIds, String text, String finishReason, TraceInfo trace) {

    /** Input ids the model saw, BOS included. */
    public int[] inputIds() {
        return trace.getInputIdsList().stream().mapToInt(Integer::intValue).toArray();
    }

    /** Logits at the last prompt position, or null when the call was not traced. */
    public float[] lastLogits() {
        if (!trace.hasLastLogits()) {
            return null;
        }
        var t = trace.getLastLogits();
        if (t.getDtype() != DType.DTYPE_F32 || t.getData().size() % 4 != 0) {
            throw new IllegalStateException("trace.last_logits: expected DTYPE_F32 data, got " + t.getDtype() + " with "
                    + t.getData().size() + " bytes");
        }
        FloatBuffer fb = t.getData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        float[] out = new float[fb.remaining()];
        fb.get(out);
        return out;
    }

    /** {@code [layer][prompt position][k]} routed experts by descending router logit, or null when not traced. */
    public int[][][] routerTopk() {
        if (trace.getRouterTopkCount() == 0) {
            return null;
        }
        int[][][] out = new int[trace.getRouterTopkCount()][][];
        for (int l = 0; l < out.length; l++) {
            LayerRoutes lr = trace.getRouterTopk(l);
            out[l] = new int[lr.getPositionsCount()][];
            for (int p = 0; p < out[l].length; p++) {
                out[l][p] = lr.getPositions(p).getExpertsList().stream().mapToInt(Integer::intValue).toArray();
            }
        }
        return out;
    }
}
