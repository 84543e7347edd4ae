package io.moemesh.model.kernel;

import io.moemesh.model.safetensors.DType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * {@code y[m, N] = x[m, K] · Wᵀ} for a weight {@code W[N, K]} in f32, bf16 or f16: the product of a
 * {@code torch.nn.Linear} without bias, float32 activations and accumulators, weights widened exactly.
 *
 * <p>Paths (measured in docs/performance.md): bf16 → {@link Bf16Tiles} (widening by shift/mask in registers);
 * f32 → {@link F32Tiles}, or OpenBLAS sgemm ({@link Blas}) from {@link #BLAS_MIN_ROWS} rows up, where it is
 * faster; f16 → a block of weight rows widened into a per-thread float32 buffer, then {@link F32Tiles}. Output
 * rows are split across cores by {@link Parallel}. Several weights that read the same input (q/k/v, an
 * expert's gate and up) run in one parallel region, so a decode step pays one hand-off per group, not per
 * matrix. Warmed up, no call allocates.
 */
public final class MatMul {
    /** From this many activation rows up, float32 weights go to OpenBLAS when it is available. */
    static final int BLAS_MIN_ROWS = Integer.getInteger("moemesh.blas.minRows", 48);
    /** Weight bytes per cache block: every activation tile passes over a block while it sits in L2 (1 MB). */
    private static final int BLOCK_BYTES = 256 * 1024;
    private static final ThreadLocal<Scratch> WIDENED = ThreadLocal.withInitial(Scratch::new);

    private MatMul() {
    }

    /** y[i*N + n] = Σ_k x[i*K + k] · W[n, k] for i &lt; m. */
    public static void matmul(float[] x, int m, Matrix w, float[] y) {
        matmul(x, 0, m, w, y, 0);
    }

    public static void matmul(float[] x, int xOff, int m, Matrix w, float[] y, int yOff) {
        int n = w.rows();
        int k = w.cols();
        check(x, xOff, m, w, y, yOff, n);
        if (m == 0) {
            return;
        }
        Call c = Call.acquire(x, xOff, m, k, w.dtype() == DType.BF16);
        try {
            c.mode = Call.SINGLE;
            c.w = w;
            c.y = y;
            c.yOff = yOff;
            Parallel.forRange(n, 4, (long) m * k, c);
        } finally {
            c.release();
        }
    }

    /**
     * {@code ys[j] = x · ws[j]ᵀ} for weights with the same column count (q, k and v of a layer) in one parallel
     * region over their stacked rows.
     */
    public static void matmul(float[] x, int m, Matrix[] ws, float[][] ys) {
        int k = ws[0].cols();
        int total = 0;
        boolean bf16 = false;
        for (int j = 0; j < ws.length; j++) {
            if (ws[j].cols() != k) {
                throw new IllegalArgumentException(ws[j].name() + " has " + ws[j].cols() + " columns, " + ws[0].name()
                        + " " + k + ": a fused matmul needs one input width");
            }
            check(x, 0, m, ws[j], ys[j], 0, ws[j].rows());
            total += ws[j].rows();
            bf16 |= ws[j].dtype() == DType.BF16;
        }
        if (m == 0) {
            return;
        }
        Call c = Call.acquire(x, 0, m, k, bf16);
        try {
            c.mode = Call.FUSED;
            c.ws = ws;
            c.ys = ys;
            Parallel.forRange(total, 4, (long) m * k, c);
        } finally {
            c.release();
        }
    }

    /**
     * The SwiGLU hidden state of one expert, {@code h = silu(x · gateᵀ) ⊙ (x · upᵀ)} ([m, F]), in one parallel
     * region: each thread computes gate and up for its share of the F rows block by block and combines them
     * while they are in cache. {@code u} is scratch of at least m·F floats.
     */
    public static void swiGlu(float[] x, int m, Matrix gate, Matrix up, float[] h, float[] u) {
        int f = gate.rows();
        int k = gate.cols();
        if (up.rows() != f || up.cols() != k) {
            throw new IllegalArgumentException(up.name() + " must have the shape of " + gate.name());
        }
        check(x, 0, m, gate, h, 0, f);
        check(x, 0, m, up, u, 0, f);
        if (m == 0) {
            return;
        }
        Call c = Call.acquire(x, 0, m, k, gate.dtype() == DType.BF16 || up.dtype() == DType.BF16);
        try {
            c.mode = Call.SWIGLU;
            c.w = gate;
            c.up = up;
            c.y = h;
            c.u = u;
            Parallel.forRange(f, 4, 2L * m * k, c);
        } finally {
            c.release();
        }
    }

    /**
     * One matmul's arguments, reused by its thread so that a call allocates nothing (a capturing lambda per
     * call would be an allocation per layer in the decode loop). A nested call on the same thread gets its own.
     */
    private static final class Call implements Parallel.RangeBody {
        static final int SINGLE = 0;
        static final int FUSED = 1;
        static final int SWIGLU = 2;
        private static final ThreadLocal<Call> MINE = ThreadLocal.withInitial(Call::new);

        int mode;
        float[] x;
        int xOff;
        int m;
        /** Even/odd-permuted activations for bf16 weights. */
        float[] xp = new float[0];
        Matrix w;
        Matrix up;
        float[] y;
        float[] u;
        int yOff;
        Matrix[] ws;
        float[][] ys;
        private boolean busy;

        static Call acquire(float[] x, int xOff, int m, int k, boolean bf16) {
            Call c = MINE.get();
            if (c.busy) {
                c = new Call();
            }
            c.busy = true;
            c.x = x;
            c.xOff = xOff;
            c.m = m;
            if (bf16) {
                if (c.xp.length < m * k) {
                    c.xp = new float[Math.max(m * k, c.xp.length + c.xp.length / 2)];
                }
                Bf16Tiles.permute(x, xOff, m, k, c.xp);
            }
            return c;
        }

        void release() {
            busy = false;
            x = null;
            w = null;
            up = null;
            y = null;
            u = null;
            ws = null;
            ys = null;
        }

        @Override
        public void run(int from, int to) {
            switch (mode) {
                case SINGLE -> rows(x, xOff, xp, m, w, from, to, y, yOff, w.rows());
                case FUSED -> {
                    int base = 0;
                    for (int j = 0; j < ws.length && base < to; j++) {
                        int n = ws[j].rows();
                        int lo = Math.max(from, base);
                        int hi = Math.min(to, base + n);
                        if (lo < hi) {
                            rows(x, 0, xp, m, ws[j], lo - base, hi - base, ys[j], 0, n);
                        }
                        base += n;
                    }
                }
                default -> {
                    int f = w.rows();
                    int nb = blockRows(w.cols(), w.dtype().bytes());
                    for (int b0 = from; b0 < to; b0 += nb) {
                        int b1 = Math.min(to, b0 + nb);
                        rows(x, 0, xp, m, w, b0, b1, y, 0, f);
                        rows(x, 0, xp, m, up, b0, b1, u, 0, f);
                        for (int i = 0; i < m; i++) {
                            VectorOps.siluMul(y, u, i * f + b0, b1 - b0);
                        }
                    }
                }
            }
        }
    }

    private static volatile boolean warm;
    private static final AtomicBoolean WARMING = new AtomicBoolean();

    /**
     * Runs every kernel path (each dtype, 1 to 16 rows so every tile remainder, the fused and SwiGLU entry
     * points) until C2 has compiled it: a second or two of CPU on a quiet machine, once per JVM. Without it the
     * first minute of serving ran the tile methods in the interpreter or C1, where each Vector API operation
     * allocates a boxed vector and runs ~10x slower, and each batch shape seen for the first time deoptimised the
     * row loop again (measured with JFR: docs/performance.md). The weights are memory-mapped like a checkpoint's:
     * warming up on heap segments left a second segment class in the type profile of the vector loads, and C2's
     * code for the mapped weights then ran at half speed.
     *
     * <p>Only speed depends on it, never bits: every lane sum is added in an order our code fixes ({@link
     * LaneSum}), not by {@code reduceLanes}, whose order differs between the interpreter, C1 and C2, and every
     * other kernel step is an exact IEEE operation in every tier (JitTierBitsTest compares an {@code -Xint} and a
     * C1-only JVM with this one). So the services start it with {@link #warmUpInBackground} and report SERVING
     * without waiting: requests that arrive meanwhile get the same bits, only slower (kernels in the interpreter
     * or C1, competing with the compiler threads for the cores) until the compiled code is installed. Warmed up
     * or not, the same inputs give the same bits on every thread and for every split of the rows ({@link Exp}
     * keeps the exponentials split-independent too). Synchronized: a second caller waits for the first run.
     */
    public static synchronized void warmUp() {
        if (warm) {
            return;
        }
        int n = 64;
        try (Arena arena = Arena.ofShared()) {
            for (int k : new int[] {256, 100}) {
                for (DType dtype : new DType[] {DType.BF16, DType.F32}) {
                    long bytes = (long) n * k * dtype.bytes();
                    MemorySegment both = mappedZeros(arena, 2 * bytes);
                    Matrix a = new Matrix("warm-a", both.asSlice(0, bytes), dtype, n, k);
                    Matrix b = new Matrix("warm-b", both.asSlice(bytes, bytes), dtype, n, k);
                    Matrix[] ab = {a, b};
                    float[] x = new float[16 * k];
                    float[] y = new float[16 * n];
                    float[] u = new float[16 * n];
                    float[][] ys = {y, u};
                    for (int rep = 0; rep < (k == 256 ? 200 : 20); rep++) {
                        for (int m = 1; m <= 16; m++) {
                            matmul(x, m, a, y);
                            matmul(x, m, ab, ys);
                            swiGlu(x, m, a, b, y, u);
                        }
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("kernel warm-up needs a temporary file", e);
        }
        warm = true;
    }

    /**
     * Starts {@link #warmUp} on a daemon thread unless it ran or was started already; returns at once. The thread
     * runs at the lowest CPU priority ({@link BackgroundPriority}) and alone (no kernel helpers): it takes the CPU that
     * nothing else on the node wants, so it no longer slows the start of the services still starting next to it.
     */
    public static void warmUpInBackground() {
        if (!warm && WARMING.compareAndSet(false, true)) {
            Thread.ofPlatform().daemon().name("kernel-warm-up").start(() -> {
                BackgroundPriority.lowerCurrentThread();
                Parallel.withThreads(1, MatMul::warmUp);
            });
        }
    }

    /** A read-only mapping of {@code bytes} zeros from a temporary file (deleted at once; the mapping stays). */
    private static MemorySegment mappedZeros(Arena arena, long bytes) throws IOException {
        Path file = Files.createTempFile("moemesh-warmup", ".bin");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(1), bytes - 1);
            return ch.map(FileChannel.MapMode.READ_ONLY, 0, bytes, arena);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /** Weight rows per L2 block for rows of k elements of {@code bytes} each (a multiple of 4, 4..256). */
    static int blockRows(int k, int bytes) {
        int rows = BLOCK_BYTES / Math.max(1, k * bytes);
        return Math.max(4, Math.min(256, rows & ~3));
    }

    private static void check(float[] x, int xOff, int m, Matrix w, float[] y, int yOff, int n) {
        int k = w.cols();
        if (m < 0 || x.length < xOff + (long) m * k || y.length < yOff + (long) m * n) {
            throw new IllegalArgumentException("matmul " + w.name() + ": x holds " + (x.length - xOff) + " / y holds "
                    + (y.length - yOff) + " floats, need " + (long) m * k + " / " + (long) m * n);
        }
    }

    /** Output columns [n0, n1) of all m rows, on the calling thread. */
    private static void rows(float[] x, int xOff, float[] xp, int m, Matrix w, int n0, int n1, float[] y, int yOff,
                             int ldy) {
        int k = w.cols();
        switch (w.dtype()) {
            case BF16 -> Bf16Tiles.rows(xp, m, k, w.data(), n0, n1, y, yOff, ldy);
            case F32 -> {
                if (m >= BLAS_MIN_ROWS && Blas.available()) {
                    Blas.sgemm(MemorySegment.ofArray(x).asSlice(4L * xOff), m, k,
                            w.data().asSlice(4L * n0 * k), n1 - n0, MemorySegment.ofArray(y).asSlice(4L * (yOff + n0)),
                            ldy);
                } else {
                    F32Tiles.rows(x, xOff, m, k, w.data(), n0, n1, y, yOff, ldy);
                }
            }
            case F16 -> f16Rows(x, xOff, m, w, n0, n1, y, yOff, ldy);
        }
    }

    /** f16 weights: widen a block of rows to float32 (exact), then the f32 tiles on it. */
    private static void f16Rows(float[] x, int xOff, int m, Matrix w, int n0, int n1, float[] y, int yOff, int ldy) {
        int k = w.cols();
        int nb = blockRows(k, 4);
        Scratch s = WIDENED.get().acquire(nb * k);
        try {
            MemorySegment block = MemorySegment.ofArray(s.data);
            for (int b0 = n0; b0 < n1; b0 += nb) {
                int b1 = Math.min(n1, b0 + nb);
                Numerics.widen(w.data(), DType.F16, (long) b0 * k, s.data, 0, (b1 - b0) * k);
                F32Tiles.rows(x, xOff, m, k, block, 0, b1 - b0, y, yOff + b0, ldy);
            }
        } finally {
            s.release();
        }
    }

    /** A per-thread buffer, grown on demand; a nested use on the same thread gets a private array. */
    private static final class Scratch {
        float[] data = new float[0];
        private boolean busy;
        private Scratch nested;

        Scratch acquire(int floats) {
            if (busy) {
                nested = new Scratch();
                return nested.acquire(floats);
            }
            busy = true;
            if (data.length < floats) {
                data = new float[Math.max(floats, data.length + data.length / 2)];
            }
            return this;
        }

        void release() {
            busy = false;
        }
    }
}
