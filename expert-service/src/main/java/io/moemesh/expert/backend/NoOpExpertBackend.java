package io.moemesh.expert.backend;

import io.moemesh.model.engine.ExpertKey;
import java.util.Arrays;

/**
 * For measuring the hop (gateway → instance → gateway) without compute: every expert is the identity, so a
 * token's output is {@code (Σ w) · x}. That costs one pass over the payload, reads no weights (loading is
 * free, resident bytes stay 0) and still lets a caller check that rows and weights were routed correctly.
 */
public final class NoOpExpertBackend implements ExpertBackend {
    private final int hidden;

    public NoOpExpertBackend(int hidden) {
        this.hidden = hidden;
    }

    @Override
    public String name() {
        return "noop";
    }

    /** One multiply per element, no weights, no other threads. */
    @Override
    public int inlineMaxTokens() {
        return Integer.MAX_VALUE;
    }

    @Override
    public LoadedExpert load(ExpertKey key) {
        return new Identity(key);
    }

    @Override
    public void compute(BatchInput batch, ExpertLookup experts, float[] out) {
        int p = 0;
        for (int t = 0; t < batch.tokens(); t++) {
            float w = 0f;
            for (int j = 0; j < batch.counts()[t]; j++, p++) {
                w += batch.weights()[p];
            }
            int off = t * hidden;
            if (w == 0f) {
                Arrays.fill(out, off, off + hidden, 0f);
            } else {
                for (int i = 0; i < hidden; i++) {
                    out[off + i] = w * batch.x()[off + i];
                }
            }
        }
    }

    private record Identity(ExpertKey key) implements LoadedExpert {
        @Override
        public long byteSize() {
            return 0;
        }
    }
}
