package io.moemesh.model.kernel;

import io.moemesh.model.MoeModel;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.PagedKvCache;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepOutput;
import io.moemesh.model.generate.Sampler;
import io.moemesh.model.golden.TestModels;
import io.moemesh.model.safetensors.DType;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Everything whose bits {@link JitTierBitsTest} compares across JIT tiers: the matmul kernels on random inputs
 * (bf16 and f32 weights at m = 1..16 so every tile remainder, f16 at two, K not a multiple of the vector length,
 * a column count not a multiple of 4, the fused and SwiGLU entry points), the vector kernels over lengths 1..40
 * (vector bodies and tails), and a prefill plus greedy decode on each bundled tiny model (its logits). {@link
 * #main} runs it in a child JVM and writes the results to the file named by its argument.
 */
final class TierProbe {
    static final int DECODE_STEPS = 3;

    private TierProbe() {
    }

    public static void main(String[] args) throws IOException {
        long t0 = System.nanoTime();
        Map<String, float[]> results = compute();
        System.out.printf("probe computed in %.1f s%n", (System.nanoTime() - t0) / 1e9);
        try (OutputStream file = Files.newOutputStream(Path.of(args[0]));
             DataOutputStream out = new DataOutputStream(new java.io.BufferedOutputStream(file))) {
            out.writeInt(results.size());
            for (Map.Entry<String, float[]> e : results.entrySet()) {
                out.writeUTF(e.getKey());
                out.writeInt(e.getValue().length);
                for (float f : e.getValue()) {
                    out.writeInt(Float.floatToRawIntBits(f));
                }
            }
        }
    }

    static Map<String, float[]> read(Path file) throws IOException {
        Map<String, float[]> results = new LinkedHashMap<>();
        try (var in = new java.io.DataInputStream(new java.io.BufferedInputStream(Files.newInputStream(file)))) {
            int n = in.readInt();
            for (int i = 0; i < n; i++) {
                String name = in.readUTF();
                float[] v = new float[in.readInt()];
                for (int j = 0; j < v.length; j++) {
                    v[j] = Float.intBitsToFloat(in.readInt());
                }
                results.put(name, v);
            }
        }
        return results;
    }

    static Map<String, float[]> compute() {
        Map<String, float[]> out = new LinkedHashMap<>();
        kernels(out);
        vectorOps(out);
        for (String model : List.of(TestModels.MIXTRAL, TestModels.MIXTRAL_BF16, TestModels.QWEN2_MOE)) {
            out.put("greedy " + model, greedy(model));
        }
        return out;
    }

    private static void kernels(Map<String, float[]> out) {
        SplittableRandom rnd = new SplittableRandom(12);
        int n = 11;
        try (Arena arena = Arena.ofShared()) {
            for (int k : new int[] {100}) { // 100: a vector body plus a scalar tail for bf16 and f32
                for (DType dtype : DType.values()) {
                    Matrix a = random("a", arena, dtype, n, k, rnd);
                    Matrix b = random("b", arena, dtype, n, k, rnd);
                    for (int m = 1; m <= 16; m++) {
                        // f16 runs the f32 tiles on widened weights; the fused and SwiGLU entry points run the
                        // same tiles: a few row counts each keep the -Xint run short.
                        boolean all = dtype != DType.F16 && (m <= 5 || m == 8 || m == 16);
                        if (dtype == DType.F16 && m != 1 && m != 6) {
                            continue;
                        }
                        float[] x = new float[m * k];
                        for (int i = 0; i < x.length; i++) {
                            x[i] = (float) rnd.nextDouble(-2, 2);
                        }
                        String key = dtype + " k=" + k + " m=" + m;
                        float[] y = new float[m * n];
                        MatMul.matmul(x, m, a, y);
                        out.put("matmul " + key, y);
                        if (!all) {
                            continue;
                        }
                        float[] y0 = new float[m * n];
                        float[] y1 = new float[m * n];
                        MatMul.matmul(x, m, new Matrix[] {a, b}, new float[][] {y0, y1});
                        out.put("fused " + key, concat(y0, y1));
                        float[] h = new float[m * n];
                        MatMul.swiGlu(x, m, a, b, h, new float[m * n]);
                        out.put("swiGlu " + key, h);
                    }
                }
            }
        }
    }

    private static Matrix random(String name, Arena arena, DType dtype, int rows, int cols, SplittableRandom rnd) {
        MemorySegment seg = arena.allocate((long) rows * cols * dtype.bytes());
        for (long i = 0; i < (long) rows * cols; i++) {
            float v = (float) rnd.nextDouble(-1, 1);
            switch (dtype) {
                case F32 -> seg.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
                case BF16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i,
                        (short) (Float.floatToRawIntBits(v) >>> 16));
                case F16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16(v));
            }
        }
        return new Matrix(name, seg, dtype, rows, cols);
    }

    private static void vectorOps(Map<String, float[]> out) {
        SplittableRandom rnd = new SplittableRandom(34);
        for (int len = 1; len <= 40; len++) {
            float[] a = new float[len];
            float[] b = new float[len];
            float[] w = new float[len];
            for (int i = 0; i < len; i++) {
                a[i] = (float) rnd.nextDouble(-3, 3);
                b[i] = (float) rnd.nextDouble(-3, 3);
                w[i] = (float) rnd.nextDouble(0.5, 1.5);
            }
            float[] norm = new float[len];
            VectorOps.rmsNorm(a, 0, w, 1e-5f, norm, 0, 1, len);
            float[] e = a.clone();
            float sum = VectorOps.expShifted(e, 0, len, VectorOps.max(a, 0, len));
            float[] silu = a.clone();
            VectorOps.siluMul(silu, b, len);
            float[] keys = new float[4 * len];
            for (int i = 0; i < keys.length; i++) {
                keys[i] = (float) rnd.nextDouble(-3, 3);
            }
            float[] scores = new float[4];
            VectorOps.dot4(a, 0, keys, 0, len, len, scores, 0);
            out.put("vector ops n=" + len, concat(new float[] {VectorOps.dot(a, 0, b, 0, len), sum}, concat(norm,
                    concat(e, concat(silu, scores)))));
        }
    }

    /** Prefill of a 5-token prompt and {@link #DECODE_STEPS} greedy decode steps: every step's logits. */
    private static float[] greedy(String name) {
        try (MoeModel model = MoeModel.open(TestModels.dir(name))) {
            ModelConfig c = model.config();
            Engine engine = model.localEngine();
            PagedKvCache cache = model.newCache(64);
            int[] prompt = {1, 17, 250, 3, 99};
            StepOutput step = engine.step(List.of(new SequenceStep(1, prompt, 0, SequenceStep.Logits.LAST, false)),
                    cache).getFirst();
            float[] all = step.logits();
            int pos = prompt.length;
            for (int s = 0; s < DECODE_STEPS; s++) {
                int next = Sampler.argmax(step.logits(), 0, c.vocabSize());
                step = engine.step(List.of(SequenceStep.decode(1, next, pos++)), cache).getFirst();
                all = concat(all, step.logits());
            }
            return all;
        }
    }

    private static float[] concat(float[] a, float[] b) {
        float[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
