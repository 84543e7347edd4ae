package io.moemesh.router.trace;

import java.util.Arrays;

/**
 * The routes of one token through the MoE layers of a trace: at each layer index (0 = the trace's first MoE
 * layer), the experts its gate chose, best first, and their gate weights; {@code null} where the trace has no
 * row for that layer (Mixtral's recorder dropped tokens whose two weights were exactly equal).
 *
 * @param key     the token's name in its trace: {@code "<problem_id>:<token_idx>"} (Mixtral JSONL) or
 *                {@code "<token_idx>"} (FLAME CSV)
 * @param tokenId the vocabulary id of the token, or -1 when the trace does not say (Mixtral JSONL)
 * @param experts per layer index, the chosen experts best first (length top-k), or null
 * @param weights per layer index, the gate weights of {@code experts} in the same order, or null
 */
public record TokenRoute(String key, int tokenId, int[][] experts, float[][] weights) {

    public TokenRoute {
        if (key == null || key.isEmpty()) {
            throw new IllegalArgumentException("a token route needs a key");
        }
        if (experts == null || weights == null || experts.length != weights.length) {
            throw new IllegalArgumentException("token " + key + ": experts and weights need one entry per layer");
        }
        for (int l = 0; l < experts.length; l++) {
            if ((experts[l] == null) != (weights[l] == null)
                    || experts[l] != null && experts[l].length != weights[l].length) {
                throw new IllegalArgumentException("token " + key + " layer index " + l
                        + ": experts and weights differ in length");
            }
        }
    }

    /** Layer indexes of the trace (including those this token lacks). */
    public int layers() {
        return experts.length;
    }

    /** Whether the trace has this token's routes at layer index {@code layer}. */
    public boolean has(int layer) {
        return experts[layer] != null;
    }

    /** Routes at every layer of the trace. */
    public boolean fullPath() {
        return Arrays.stream(experts).allMatch(e -> e != null);
    }
}
