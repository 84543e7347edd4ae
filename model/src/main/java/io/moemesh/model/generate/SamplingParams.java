package io.moemesh.model.generate;

import java.util.OptionalLong;

/**
 * How one request picks its tokens.
 *
 * @param temperature 0 for greedy (argmax); otherwise logits are divided by it before top-k/top-p
 * @param topP        nucleus mass in (0, 1]; 1 disables
 * @param topK        keep the k most likely tokens; 0 disables
 * @param seed        seeds the request's own generator, so its random draws never depend on what else runs (the
 *                    logits may, in their last bits: see gateway/README.md, Scheduling)
 * @param maxTokens   tokens to generate at most (≥ 1)
 * @param ignoreEos   keep generating past EOS ids (benchmarks)
 */
public record SamplingParams(double temperature, double topP, int topK, OptionalLong seed, int maxTokens,
                             boolean ignoreEos) {

    public SamplingParams {
        if (!(temperature >= 0) || Double.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number ≥ 0, got " + temperature);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("top_k must be ≥ 0 (0 disables it), got " + topK);
        }
        if (maxTokens < 1) {
            throw new IllegalArgumentException("max_tokens must be ≥ 1, got " + maxTokens);
        }
    }

    public static SamplingParams greedy(int maxTokens) {
        return new SamplingParams(0, 1, 0, OptionalLong.empty(), maxTokens, false);
    }

    public boolean isGreedy() {
        return temperature == 0;
    }
}
