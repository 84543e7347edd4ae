package io.moemesh.cli.bench.jmh;

import io.moemesh.model.engine.ExpertFfn;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.model.engine.ExpertWeights;
import io.moemesh.model.kernel.Blas;
import io.moemesh.model.kernel.MatMul;
import io.moemesh.model.kernel.Matrix;
import io.moemesh.model.kernel.Parallel;
import io.moemesh.model.safetensors.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * One expert SwiGLU FFN ({@code down(silu(gate·x) ⊙ up·x)}, 6·tokens·hidden·intermediate FLOPs) per operation,
 * cycling through {@code experts} experts so that the weights come from memory, not from the 32 MB L3: our
 * kernels on bf16 and f32 weights ({@link ExpertFfn}, the engine's path) next to plain OpenBLAS sgemm on f32
 * weights for the same three products (OpenBLAS threading over all cores, as a user of it would run it).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
public class ExpertFfnBenchmark {
    public static final String OURS_BF16 = "swiglu-bf16";
    public static final String OURS_F32 = "swiglu-f32";
    public static final String SGEMM = "sgemm-f32";

    @Param({"1", "8", "32", "128"})
    public int tokens;

    @Param({OURS_BF16, OURS_F32, SGEMM})
    public String kernel;

    @Param({"1024"})
    public int hidden;

    @Param({"2816"})
    public int intermediate;

    @Param({"16"})
    public int experts;

    private Arena arena;
    private ExpertWeights[] weights;
    private final ExpertFfn ffn = new ExpertFfn();
    private float[] x;
    private float[] y;
    private MemorySegment xs;
    private MemorySegment hs;
    private MemorySegment ys;
    private int next;

    @Setup(Level.Trial)
    public void setup() throws IOException {
        MatMul.warmUp();
        arena = Arena.ofShared();
        DType dtype = kernel.equals(OURS_BF16) ? DType.BF16 : DType.F32;
        weights = new ExpertWeights[experts];
        for (int e = 0; e < experts; e++) {
            weights[e] = new ExpertWeights(new ExpertKey(0, e), matrix("gate", dtype, intermediate, hidden, e),
                    matrix("up", dtype, intermediate, hidden, e + 100), matrix("down", dtype, hidden, intermediate, e + 200));
        }
        x = new float[tokens * hidden];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i * 0.37);
        }
        y = new float[tokens * hidden];
        if (kernel.equals(SGEMM)) {
            Blas.threads(Parallel.threads());
            xs = arena.allocate(4L * x.length, 64);
            MemorySegment.copy(x, 0, xs, ValueLayout.JAVA_FLOAT, 0, x.length);
            hs = arena.allocate(4L * tokens * intermediate, 64);
            ys = arena.allocate(4L * y.length, 64);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Blas.threads(1);
        arena.close();
    }

    /**
     * Weights of std ≈ 0.03 from a cheap hash, so filling hundreds of MB takes no longer than a second. Memory-
     * mapped from a temporary file like a checkpoint's tensors: the kernels' vector loads are compiled for the
     * segment class they see, so heap or malloc'ed weights would measure other code than the engine runs.
     */
    private Matrix matrix(String name, DType dtype, int rows, int cols, int seed) throws IOException {
        long n = (long) rows * cols;
        Path file = Files.createTempFile("moemesh-bench", ".bin");
        MemorySegment seg;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(1), n * dtype.bytes() - 1);
            seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, n * dtype.bytes(), arena);
        } finally {
            Files.deleteIfExists(file);
        }
        long h = 0x9E3779B97F4A7C15L * (seed + 1);
        for (long i = 0; i < n; i++) {
            h = h * 6364136223846793005L + 1442695040888963407L;
            float v = (int) (h >>> 40) * (0.1f / (1 << 24)) - 0.05f;
            if (dtype == DType.BF16) {
                seg.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(v) >>> 16));
            } else {
                seg.setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
            }
        }
        return new Matrix(name, seg, dtype, rows, cols);
    }

    @Benchmark
    public float expertFfn() {
        ExpertWeights w = weights[next];
        next = (next + 1) % experts;
        if (kernel.equals(SGEMM)) {
            Blas.sgemm(xs, tokens, hidden, w.gate().data(), intermediate, hs, intermediate);
            Blas.sgemm(xs, tokens, hidden, w.up().data(), intermediate, hs, intermediate);
            Blas.sgemm(hs, tokens, intermediate, w.down().data(), hidden, ys, hidden);
            return ys.get(ValueLayout.JAVA_FLOAT, 0);
        }
        ffn.apply(w, x, tokens, y);
        return y[0];
    }

    /** FLOPs of one operation. */
    public static double flops(int tokens, int hidden, int intermediate) {
        return 6.0 * tokens * hidden * intermediate;
    }
}
