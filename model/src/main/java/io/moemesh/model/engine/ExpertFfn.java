package io.moemesh.model.engine;

import io.moemesh.model.kernel.MatMul;

/**
 * The SwiGLU FFN of one expert over a gathered group of tokens, as one GEMM per projection:
 * {@code y = down(silu(gate(x)) · up(x))}; gate and up share one parallel pass ({@link MatMul#swiGlu}). Scratch
 * buffers are owned by this object and reused. Not thread-safe: one per caller thread.
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
        MatMul.swiGlu(x, rows, e.gate(), e.up(), gate, up);
        MatMul.matmul(gate, rows, e.down(), y);
    }
}
