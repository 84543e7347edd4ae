package io.moemesh.model.kernel;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * OpenBLAS {@code cblas_sgemm}, for float32 weights in large batches (where it beats the Vector API tiles:
 * see docs/performance.md) and as the yardstick of the kernel benchmark. JavaCPP's presets only unpack and
 * load the native library; calls go through the FFM linker with {@code critical(true)}, so heap arrays and
 * memory-mapped weights are passed without copies (JavaCPP's own float[] overloads copy the arrays).
 *
 * <p>OpenBLAS runs single-threaded: {@link Parallel} splits the rows, as for every other kernel, so the two
 * thread pools never fight over the cores. Disable with {@code -Dmoemesh.blas=off}. JavaCPP unpacks ~40 MB into
 * {@code -Dorg.bytedeco.javacpp.cachedir} and loads the library from there; when unset we choose
 * {@code -Dmoemesh.javacpp.cachedir}, else {@code $moemesh.home/target/javacpp} (the launcher sets
 * {@code moemesh.home}), else {@code ${user.home}/.cache/moemesh/native} (never {@code ~/.javacpp}, never a
 * shared directory such as java.io.tmpdir), prepared by {@link NativeCacheDirectory}: one that another user could
 * write is refused, with a warning, and OpenBLAS is then not loaded.
 */
public final class Blas {
    private static final Logger LOG = LoggerFactory.getLogger(Blas.class);
    private static final int ROW_MAJOR = 101;
    private static final int NO_TRANS = 111;
    private static final int TRANS = 112;
    private static MethodHandle setThreads;
    private static final MethodHandle SGEMM = load();

    private Blas() {
    }

    /** Whether OpenBLAS loaded on this platform (and was not switched off). */
    public static boolean available() {
        return SGEMM != null;
    }

    /**
     * OpenBLAS's own thread count (1 unless changed here). The engine keeps 1, since {@link Parallel} already
     * splits every GEMM; the benchmark raises it to measure plain multi-threaded sgemm.
     */
    public static void threads(int n) {
        if (SGEMM == null) {
            return;
        }
        try {
            setThreads.invokeExact(n);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * {@code y[i, j] = Σ_p x[i, p] · w[j, p]} for i &lt; m, j &lt; n on the calling thread (a weight in
     * {@code torch.nn.Linear} layout, so {@code w} is transposed); y has row stride {@code ldy}.
     */
    public static void sgemm(MemorySegment x, int m, int k, MemorySegment w, int n, MemorySegment y, int ldy) {
        if (SGEMM == null) {
            throw new IllegalStateException("OpenBLAS is not available");
        }
        try {
            SGEMM.invokeExact(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1f, x, k, w, k, 0f, y, ldy);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private static MethodHandle load() {
        if ("off".equalsIgnoreCase(System.getProperty("moemesh.blas", "auto"))) {
            return null;
        }
        try {
            String explicit = System.getProperty("moemesh.javacpp.cachedir");
            String home = System.getProperty("moemesh.home");
            try {
                if (explicit != null) {
                    NativeCacheDirectory.useUnlessSet(Path.of(explicit), "-Dmoemesh.javacpp.cachedir");
                } else if (home != null) {
                    try {
                        NativeCacheDirectory.useUnlessSet(Path.of(home, "target", "javacpp"), "-Dmoemesh.home");
                    } catch (IllegalStateException notPrivate) {
                        // A checkout's target/javacpp made under umask 002 by an older build: not ours alone, but
                        // the per-user default is, so OpenBLAS still loads (from there).
                        LOG.warn("{}; using {} instead", notPrivate.getMessage(),
                                NativeCacheDirectory.defaultDirectory());
                        NativeCacheDirectory.useUnlessSet(NativeCacheDirectory.defaultDirectory(),
                                "-Dorg.bytedeco.javacpp.cachedir (default ${user.home}/.cache/moemesh/native)");
                    }
                } else {
                    NativeCacheDirectory.useUnlessSet(NativeCacheDirectory.defaultDirectory(),
                            "-Dorg.bytedeco.javacpp.cachedir (default ${user.home}/.cache/moemesh/native)");
                }
            } catch (IllegalStateException unsafe) {
                LOG.warn("OpenBLAS not loaded; float32 GEMMs use the Vector API kernels: {}", unsafe.getMessage());
                return null;
            }
            org.bytedeco.javacpp.Loader.load(org.bytedeco.openblas.global.openblas_nolapack.class);
            Linker linker = Linker.nativeLinker();
            SymbolLookup lookup = SymbolLookup.loaderLookup();
            ValueLayout.OfInt i = ValueLayout.JAVA_INT;
            ValueLayout.OfFloat f = ValueLayout.JAVA_FLOAT;
            setThreads = linker.downcallHandle(lookup.find("openblas_set_num_threads").orElseThrow(),
                    FunctionDescriptor.ofVoid(i));
            setThreads.invokeExact(1);
            return linker.downcallHandle(lookup.find("cblas_sgemm").orElseThrow(),
                    FunctionDescriptor.ofVoid(i, i, i, i, i, i, f, ValueLayout.ADDRESS, i, ValueLayout.ADDRESS, i, f,
                            ValueLayout.ADDRESS, i),
                    Linker.Option.critical(true));
        } catch (Throwable t) {
            LOG.info("OpenBLAS unavailable ({}); float32 GEMMs use the Vector API kernels", t.toString());
            return null;
        }
    }
}
