package io.moemesh.gateway.config;

import io.moemesh.service.settings.SettingRefusedException;
import java.util.Locale;

/**
 * How many KV positions the gateway's paged cache holds. Its K and V arrays live on the JVM heap (float32, one array
 * per layer for each), so a cache larger than the heap used to end the start in an OutOfMemoryError that said
 * nothing of why (synth model M's 65,536 positions are 1 GiB, {@code moemesh up}'s default heap). Sized the way vLLM
 * sizes its cache from {@code gpu_memory_utilization}: unless configured, a share of the heap (at most
 * {@link #MAX_AUTO_TOKENS} positions); a configured size that does not fit is refused at startup, naming the
 * setting, what it needs and the heap.
 *
 * @param tokens   positions, a whole number of blocks
 * @param bytes    K and V of every layer, float32
 * @param fromHeap sized from the heap ({@code kv-cache-tokens} = 0) rather than configured
 */
public record KvCacheSizing(int tokens, long bytes, boolean fromHeap) {
    /** The most positions a cache sized from the heap gets (what every cache held before it was sized). */
    public static final int MAX_AUTO_TOKENS = 65536;
    /**
     * A cache may take at most this share of the heap, configured or not: the rest holds the engine's step buffers,
     * the hop's arrays, gRPC's and Spring's objects.
     */
    public static final double MAX_HEAP_SHARE = 0.8;

    /**
     * @param configuredTokens {@code moemesh.gateway.kv-cache-tokens}: positions, rounded up to whole blocks, or 0 to
     *                         size the cache from the heap
     * @param heapFraction     {@code moemesh.gateway.kv-cache-heap-fraction}: the share of the heap a cache sized from
     *                         it takes, in (0, {@link #MAX_HEAP_SHARE}]
     * @param maxHeapBytes     the JVM's heap ({@link Runtime#maxMemory()})
     * @throws SettingRefusedException naming the setting when the cache does not fit the heap
     */
    public static KvCacheSizing of(int configuredTokens, double heapFraction, int blockTokens, int layers, int kvDim,
                                   long maxHeapBytes) {
        if (configuredTokens < 0 || blockTokens < 1 || layers < 1 || kvDim < 1 || maxHeapBytes < 1) {
            throw new IllegalArgumentException("KV cache sizing needs tokens >= 0 and a positive block size, layer "
                    + "count, KV width and heap, got " + configuredTokens + ", " + blockTokens + ", " + layers + ", "
                    + kvDim + ", " + maxHeapBytes);
        }
        checkHeapFraction(heapFraction);
        long perToken = 2L * layers * kvDim * Float.BYTES;
        long maxBytes = (long) (MAX_HEAP_SHARE * maxHeapBytes);
        if (configuredTokens > 0) {
            long tokens = (configuredTokens + (long) blockTokens - 1) / blockTokens * blockTokens;
            long bytes = tokens * perToken;
            if (bytes > maxBytes) {
                throw new SettingRefusedException("moemesh.gateway.kv-cache-tokens", "moemesh.gateway.kv-cache-tokens="
                        + configuredTokens + " needs " + size(bytes) + " of heap for its KV cache (" + layers
                        + " layers x " + kvDim + " floats of K and as many of V per position, float32: " + size(perToken)
                        + " per position), more than " + percent(MAX_HEAP_SHARE) + " of this JVM's heap ("
                        + size(maxHeapBytes) + ", -Xmx): lower it, "
                        + "set it to 0 to size the cache from the heap, or give the gateway more heap (moemesh up "
                        + "--heap; the chart's gateway.javaOptions and memory limit)");
            }
            return new KvCacheSizing((int) tokens, bytes, false);
        }
        long fit = (long) (heapFraction * maxHeapBytes) / perToken;
        // One float array per layer for K and one for V (BlockPool): at most Integer.MAX_VALUE - 8 floats each.
        long arrayCap = (Integer.MAX_VALUE - 8L) / kvDim;
        long tokens = Math.min(Math.min(fit, MAX_AUTO_TOKENS), arrayCap) / blockTokens * blockTokens;
        if (tokens < blockTokens) {
            throw new SettingRefusedException("moemesh.gateway.kv-cache-heap-fraction",
                    "moemesh.gateway.kv-cache-heap-fraction=" + heapFraction + " of this JVM's "
                    + "heap (" + size(maxHeapBytes) + ", -Xmx) holds no KV block of " + blockTokens + " positions ("
                    + size(blockTokens * perToken) + "): give the gateway more heap (moemesh up --heap; the chart's "
                    + "gateway.javaOptions and memory limit)");
        }
        return new KvCacheSizing((int) tokens, tokens * perToken, true);
    }

    /** {@code moemesh.gateway.kv-cache-heap-fraction} must be in (0, {@link #MAX_HEAP_SHARE}]. */
    static void checkHeapFraction(double heapFraction) {
        if (!(heapFraction > 0 && heapFraction <= MAX_HEAP_SHARE)) {
            throw new IllegalArgumentException("moemesh.gateway.kv-cache-heap-fraction must be in (0, " + MAX_HEAP_SHARE
                    + "], got " + heapFraction);
        }
    }

    /** For the startup log: positions, blocks, bytes and where the size came from. */
    public String describe(int blockTokens, long maxHeapBytes) {
        return tokens + " positions (" + tokens / blockTokens + " blocks of " + blockTokens + "), " + size(bytes) + ", "
                + (fromHeap ? "sized from the heap: " + percent((double) bytes / maxHeapBytes) + " of " + size(maxHeapBytes)
                : "moemesh.gateway.kv-cache-tokens");
    }

    private static String size(long bytes) {
        if (bytes >= 1L << 30) {
            return String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30));
        }
        if (bytes >= 1L << 20) {
            return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
        }
        return String.format(Locale.ROOT, "%.1f KiB", bytes / 1024.0);
    }

    private static String percent(double share) {
        return Math.round(share * 100) + "%";
    }
}
