package io.moemesh.model.engine;

import io.moemesh.model.kernel.MatMul;
import io.moemesh.model.kernel.VectorOps;

/**
 * The SwiGLU FFN of one expert over a gathered group of tokens, as one GEMM per projection:
 * {@code y = down(silu(gate(x)) · up(x))}. Scratch buffers are owned by the caller and reused.
 */
public final class ExpertFfn {
    private float[] gate = new float[0];
    private float[] up = new float[0];

    /** y[g, hidden] = FFN(x[g, hidden]); x and y may be larger than needed. */
    public void apply(ExpertWeights e, float[] x, int rows, float[] y) {
        int f = e.intermediate();
        int need = rows * f;
        if (gate.length < need) {
            gate = new float[need];
            up = new float[need];
        }
        MatMul.matmul(x, rows, e.gate(), gate);
        MatMul.matmul(x, rows, e.up(), up);
        VectorOps.siluMul(gate, up, need);
        MatMul.matmul(gate, rows, e.down(), y);
    }
}
