package io.moemesh.model.generate;

/**
 * Log-probabilities of a sampled token under the model (log-softmax of the raw logits, before temperature,
 * top-k and top-p, as vLLM reports them), with the most likely alternatives.
 *
 * @param topIds      the {@code n} most likely token ids, most likely first
 * @param topLogprobs their log-probabilities
 */
public record TokenLogprobs(int token, float logprob, int[] topIds, float[] topLogprobs) {

    /** Computes them from a row of logits. */
    public static TokenLogprobs of(float[] logits, int off, int vocab, int token, int top) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            max = Math.max(max, logits[off + i]);
        }
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            sum += Math.exp(logits[off + i] - max);
        }
        double logZ = max + Math.log(sum);
        int[] ids = new int[top];
        float[] lps = new float[top];
        boolean[] used = new boolean[vocab];
        for (int r = 0; r < top; r++) {
            int best = -1;
            for (int i = 0; i < vocab; i++) {
                if (!used[i] && (best < 0 || logits[off + i] > logits[off + best])) {
                    best = i;
                }
            }
            used[best] = true;
            ids[r] = best;
            lps[r] = (float) (logits[off + best] - logZ);
        }
        return new TokenLogprobs(token, (float) (logits[off + token] - logZ), ids, lps);
    }
}
