package io.moemesh.model.engine;

/**
 * Default rotary position embedding (Su et al., RoFormer, arXiv:2104.09864) in transformers' "rotate_half"
 * layout: dimension i pairs with i + d/2. Frequencies are computed in float32 as transformers does
 * ({@code inv_freq = 1 / theta^(2i/d)}, {@code cos(pos · inv_freq)}), so angles match bit for bit where it matters.
 */
public final class Rope {
    private final int headDim;
    private final float[] invFreq;
    private float[] cos = new float[0];
    private float[] sin = new float[0];
    private int cachedPositions;

    public Rope(int headDim, double theta) {
        this.headDim = headDim;
        int half = headDim / 2;
        invFreq = new float[half];
        for (int i = 0; i < half; i++) {
            float exponent = (float) (2 * i) / headDim;
            invFreq[i] = (float) (1.0 / (float) Math.pow(theta, exponent));
        }
    }

    /** Grows the cos/sin tables to cover positions [0, positions). */
    private void ensure(int positions) {
        if (positions <= cachedPositions) {
            return;
        }
        int n = Math.max(positions, cachedPositions * 2);
        int half = headDim / 2;
        float[] c = new float[n * half];
        float[] s = new float[n * half];
        for (int p = 0; p < n; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * invFreq[i];
                c[p * half + i] = (float) Math.cos(angle);
                s[p * half + i] = (float) Math.sin(angle);
            }
        }
        cos = c;
        sin = s;
        cachedPositions = n;
    }

    /** Rotates {@code heads} consecutive heads of x starting at {@code off}, all at position {@code pos}. */
    public void apply(float[] x, int off, int heads, int pos) {
        ensure(pos + 1);
        int half = headDim / 2;
        int base = pos * half;
        for (int h = 0; h < heads; h++) {
            int o = off + h * headDim;
            for (int i = 0; i < half; i++) {
                float c = cos[base + i];
                float s = sin[base + i];
                float a = x[o + i];
                float b = x[o + half + i];
                x[o + i] = a * c - b * s;
                x[o + half + i] = b * c + a * s;
            }
        }
    }
}
