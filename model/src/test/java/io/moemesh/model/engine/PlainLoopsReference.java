package io.moemesh.model.engine;

import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.kernel.Matrix;
import io.moemesh.model.safetensors.TensorStore;

/**
 * The MoE decoder written as plain scalar loops straight from the transformers modeling code (no Vector
 * API, no paging, no batching, double accumulators): the yardstick the fast paths are checked against on
 * shapes the golden models do not cover (OLMoE, head_dim 8, GQA ratio 4, top-4 of 16).
 */
final class PlainLoopsReference {
    private final ModelConfig c;
    private final DenseWeights w;
    private final TensorStore store;

    PlainLoopsReference(ModelConfig c, TensorStore store) {
        this.c = c;
        this.store = store;
        this.w = DenseWeights.load(store, c);
    }

    record Result(float[][] logits, int[][][] routes) {
    }

    Result forward(int[] ids) {
        int n = ids.length;
        int h = c.hiddenSize();
        float[][] x = new float[n][h];
        for (int t = 0; t < n; t++) {
            for (int i = 0; i < h; i++) {
                x[t][i] = w.embed().get(ids[t], i);
            }
        }
        int[][][] routes = new int[c.numLayers()][n][];
        for (int l = 0; l < c.numLayers(); l++) {
            LayerWeights lw = w.layers()[l];
            float[][] a = attention(l, lw, norm(x, lw.inputNorm()));
            for (int t = 0; t < n; t++) {
                for (int i = 0; i < h; i++) {
                    x[t][i] += a[t][i];
                }
            }
            float[][] xn = norm(x, lw.postAttentionNorm());
            for (int t = 0; t < n; t++) {
                float[] moe = moe(l, lw, xn[t], routes[l], t);
                for (int i = 0; i < h; i++) {
                    x[t][i] += moe[i];
                }
            }
        }
        float[][] fin = norm(x, w.finalNorm());
        float[][] logits = new float[n][];
        for (int t = 0; t < n; t++) {
            logits[t] = linear(w.lmHead(), fin[t]);
        }
        return new Result(logits, routes);
    }

    private float[][] norm(float[][] x, float[] weight) {
        float[][] out = new float[x.length][];
        for (int t = 0; t < x.length; t++) {
            out[t] = rms(x[t], weight);
        }
        return out;
    }

    private float[] rms(float[] v, float[] weight) {
        double ss = 0;
        for (float f : v) {
            ss += (double) f * f;
        }
        double inv = 1 / Math.sqrt(ss / v.length + c.rmsNormEps());
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) (weight[i] * (v[i] * inv));
        }
        return out;
    }

    private static float[] linear(Matrix m, float[] v) {
        float[] out = new float[m.rows()];
        for (int r = 0; r < m.rows(); r++) {
            double s = 0;
            for (int k = 0; k < m.cols(); k++) {
                s += (double) m.get(r, k) * v[k];
            }
            out[r] = (float) s;
        }
        return out;
    }

    private float[][] attention(int l, LayerWeights lw, float[][] xn) {
        int n = xn.length;
        int hd = c.headDim();
        float[][] q = new float[n][];
        float[][] k = new float[n][];
        float[][] v = new float[n][];
        for (int t = 0; t < n; t++) {
            q[t] = linear(lw.q(), xn[t]);
            k[t] = linear(lw.k(), xn[t]);
            v[t] = linear(lw.v(), xn[t]);
            if (lw.qBias() != null) {
                for (int i = 0; i < q[t].length; i++) {
                    q[t][i] += lw.qBias()[i];
                }
                for (int i = 0; i < k[t].length; i++) {
                    k[t][i] += lw.kBias()[i];
                    v[t][i] += lw.vBias()[i];
                }
            }
            if (lw.qNorm() != null) {
                q[t] = rms(q[t], lw.qNorm());
                k[t] = rms(k[t], lw.kNorm());
            }
            rotate(q[t], t);
            rotate(k[t], t);
        }
        int group = c.numHeads() / c.numKvHeads();
        float[][] out = new float[n][];
        for (int t = 0; t < n; t++) {
            float[] att = new float[c.qDim()];
            for (int head = 0; head < c.numHeads(); head++) {
                int kvo = (head / group) * hd;
                double[] s = new double[t + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j <= t; j++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) {
                        d += (double) q[t][head * hd + i] * k[j][kvo + i];
                    }
                    s[j] = d / Math.sqrt(hd);
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j <= t; j++) {
                    s[j] = Math.exp(s[j] - max);
                    sum += s[j];
                }
                for (int j = 0; j <= t; j++) {
                    for (int i = 0; i < hd; i++) {
                        att[head * hd + i] += (float) (s[j] / sum * v[j][kvo + i]);
                    }
                }
            }
            out[t] = linear(lw.o(), att);
        }
        return out;
    }

    /** rotate_half RoPE: pairs (i, i + d/2) of each head. */
    private void rotate(float[] x, int pos) {
        int hd = c.headDim();
        for (int head = 0; head < x.length / hd; head++) {
            for (int i = 0; i < hd / 2; i++) {
                double freq = 1.0 / Math.pow(c.ropeTheta(), (2.0 * i) / hd);
                double angle = pos * freq;
                int a = head * hd + i;
                int b = a + hd / 2;
                double xa = x[a];
                double xb = x[b];
                x[a] = (float) (xa * Math.cos(angle) - xb * Math.sin(angle));
                x[b] = (float) (xb * Math.cos(angle) + xa * Math.sin(angle));
            }
        }
    }

    private float[] moe(int l, LayerWeights lw, float[] xn, int[][] routes, int t) {
        float[] logits = linear(lw.router(), xn);
        double max = Double.NEGATIVE_INFINITY;
        for (float f : logits) {
            max = Math.max(max, f);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int e = 0; e < p.length; e++) {
            p[e] = Math.exp(logits[e] - max);
            sum += p[e];
        }
        int[] top = new int[c.topK()];
        double[] wt = new double[c.topK()];
        boolean[] used = new boolean[p.length];
        double mass = 0;
        for (int j = 0; j < top.length; j++) {
            int best = -1;
            for (int e = 0; e < p.length; e++) {
                if (!used[e] && (best < 0 || p[e] > p[best])) {
                    best = e;
                }
            }
            used[best] = true;
            top[j] = best;
            wt[j] = p[best] / sum;
            mass += wt[j];
        }
        routes[t] = top;
        float[] out = new float[xn.length];
        for (int j = 0; j < top.length; j++) {
            double weight = c.normTopKProb() ? wt[j] / mass : wt[j];
            add(out, ffn(ExpertWeights.load(store, c, new ExpertKey(l, top[j])), xn), weight);
        }
        if (lw.sharedGate() != null) {
            double g = 1 / (1 + Math.exp(-linear(lw.sharedGate(), xn)[0]));
            add(out, ffn(ExpertWeights.load(store, c, new ExpertKey(l, c.numExperts())), xn), g);
        }
        return out;
    }

    private static void add(float[] out, float[] y, double weight) {
        for (int i = 0; i < out.length; i++) {
            out[i] += (float) (weight * y[i]);
        }
    }

    private static float[] ffn(ExpertWeights e, float[] x) {
        float[] g = linear(e.gate(), x);
        float[] u = linear(e.up(), x);
        for (int i = 0; i < g.length; i++) {
            g[i] = (float) (g[i] / (1 + Math.exp(-g[i])) * u[i]);
        }
        return linear(e.down(), g);
    }
}
