package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;

/** The engine's per-step scratch, grown to the largest step seen and then reused. */
final class StepBuffers {
    int capacity;
    float[] h = new float[0];
    float[] xn = new float[0];
    float[] q = new float[0];
    float[] k = new float[0];
    float[] v = new float[0];
    /** {q, k, v}: the outputs of the fused projection. */
    float[][] qkv = {q, k, v};
    float[] attn = new float[0];
    float[] o = new float[0];
    float[] routerLogits = new float[0];
    float[] sharedLogit = new float[0];
    int[] experts = new int[0];
    float[] weights = new float[0];
    float[] moe = new float[0];
    int[] pos = new int[0];
    /** Each row's remote prefix R (0 unless its cache keeps the first R positions elsewhere). */
    int[] prefix = new int[0];
    /** [rows, heads]: log-sum-exp of the local attention partial of rows with a remote prefix. */
    float[] lse = new float[0];
    int[][] tables = new int[0][];
    /** The lookahead: layer l+1's router logits on layer l's MoE input, and its top-k' per row (empty without one). */
    float[] lookLogits = new float[0];
    int[] lookExperts = new int[0];
    float[] lookScores = new float[0];

    /** @param guesses the lookahead's experts per row; 0 = no lookahead buffers */
    void ensure(ModelConfig c, int tokens, int guesses) {
        if (tokens <= capacity) {
            return;
        }
        int n = Math.max(tokens, capacity * 2);
        int hidden = c.hiddenSize();
        h = new float[n * hidden];
        xn = new float[n * hidden];
        q = new float[n * c.qDim()];
        k = new float[n * c.kvDim()];
        v = new float[n * c.kvDim()];
        qkv = new float[][] {q, k, v};
        attn = new float[n * c.qDim()];
        o = new float[n * hidden];
        routerLogits = new float[n * c.numExperts()];
        sharedLogit = new float[n];
        experts = new int[n * c.pairsPerToken()];
        weights = new float[n * c.pairsPerToken()];
        moe = new float[n * hidden];
        pos = new int[n];
        prefix = new int[n];
        lse = new float[n * c.numHeads()];
        tables = new int[n][];
        if (guesses > 0) {
            lookLogits = new float[n * c.numExperts()];
            lookExperts = new int[n * guesses];
            lookScores = new float[n * guesses];
        }
        capacity = n;
    }
}
