package io.moemesh.expert.backend;

/**
 * One layer's worth of tokens for one instance, already validated: for token t, pairs
 * {@code [s_t, s_t + counts[t])} of {@code experts}/{@code weights}, where {@code s_t} is the sum of the counts
 * before t (token-major, as on the wire).
 *
 * @param layer  the decoder layer; a uint32 on the wire, so a value of 2^31 or more arrives negative and is
 *               refused by BatchProcessor.validate, which reports it unsigned
 * @param x      [tokens, hidden] float32 activations, row-major
 * @param counts per token, in [0, experts.length]: ProtoMapping reads the uint32 counts unsigned and refuses larger
 * @param experts expert ids, token-major; BatchProcessor.validate refuses one listed twice for the same token, so a
 *                token has at most the model's dispatchable experts as pairs
 */
public record BatchInput(int layer, int tokens, float[] x, int[] counts, int[] experts, float[] weights) {

    public int pairs() {
        return experts.length;
    }

    /** token index of every pair. */
    public int[] pairTokens(int[] into) {
        int p = 0;
        for (int t = 0; t < tokens; t++) {
            for (int j = 0; j < counts[t]; j++) {
                into[p++] = t;
            }
        }
        return into;
    }
}
