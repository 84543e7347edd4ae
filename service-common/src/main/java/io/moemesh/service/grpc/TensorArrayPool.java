package io.moemesh.service.grpc;

import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The float arrays of the hop's tensors, reused by length: the activations an expert-service reads from a message
 * or its arena slot, the outputs it computes, and the replies the gateway's client reads, each [tokens, hidden]
 * float32 (512 KiB for 32 tokens of hidden 4096). Allocating three of those per hop kept the young generation
 * filling every fraction of a second, and its pauses were most of the hop's tail: reusing them took the 32 × 4096
 * float32 hop's p99 from 0.8–1.5 ms to 0.36–0.42 ms and its p50 from 232–260 to 191–195 µs on the arena
 * (docs/performance.md, "Reused tensor arrays").
 *
 * <p>Ownership is explicit: {@link #take} hands out an array of exactly the requested length whose contents are
 * unspecified (every taker overwrites all of it), and whoever holds it may {@link #give} it back once nothing reads
 * or writes it any more. An array never given back is simply left to the garbage collector, so a path that cannot
 * know when its array is free (a reply nobody waits for) just drops it. Giving back the same array twice would hand
 * it to two owners at once; a second give while the first is still idle fails fast (checked, not locked: two
 * concurrent gives of one array are a caller bug this cannot always catch). At most {@link #MAX_IDLE_PER_LENGTH}
 * arrays of a length, {@link #MAX_IDLE_LENGTHS} lengths and {@code maxIdleBytes} in all are kept idle.
 *
 * <p>One pool per process ({@link #shared()}), like {@link HopBufferPool}.
 */
public final class TensorArrayPool {
    /** Idle arrays kept per length: a stream has a handful of calls in flight (two micro-batches, a few layers). */
    static final int MAX_IDLE_PER_LENGTH = 8;
    /** Distinct lengths kept (token counts vary per call; past this, new lengths are not pooled). */
    static final int MAX_IDLE_LENGTHS = 256;
    /** Idle bytes kept by {@link #shared()}. */
    static final long SHARED_MAX_IDLE_BYTES = 64L << 20;
    private static final TensorArrayPool SHARED = new TensorArrayPool(SHARED_MAX_IDLE_BYTES);

    private final long maxIdleBytes;
    private final Map<Integer, ArrayBlockingQueue<float[]>> idle = new ConcurrentHashMap<>();
    private final AtomicLong idleBytes = new AtomicLong();

    TensorArrayPool(long maxIdleBytes) {
        if (maxIdleBytes < 0) {
            throw new IllegalArgumentException("maxIdleBytes must be >= 0, got " + maxIdleBytes);
        }
        this.maxIdleBytes = maxIdleBytes;
    }

    public static TensorArrayPool shared() {
        return SHARED;
    }

    /** An array of exactly {@code n} floats, from the idle ones when there is one; its contents are unspecified. */
    public float[] take(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("array length must be >= 0, got " + n);
        }
        ArrayBlockingQueue<float[]> q = idle.get(n);
        float[] a = q == null ? null : q.poll();
        if (a == null) {
            return new float[n];
        }
        idleBytes.addAndGet(-bytes(a));
        return a;
    }

    /**
     * Gives back an array that nothing reads or writes any more (the caller must drop its references); kept for
     * the next {@link #take} of its length unless the pool is full.
     *
     * @throws IllegalStateException when the array is idle in the pool already (given back twice)
     */
    public void give(float[] a) {
        if (a == null || a.length == 0) {
            return;
        }
        long b = bytes(a);
        if (idleBytes.addAndGet(b) > maxIdleBytes) {
            idleBytes.addAndGet(-b);
            return;
        }
        ArrayBlockingQueue<float[]> q = idle.get(a.length);
        if (q == null && idle.size() < MAX_IDLE_LENGTHS) {
            q = idle.computeIfAbsent(a.length, k -> new ArrayBlockingQueue<>(MAX_IDLE_PER_LENGTH));
        }
        if (q != null) {
            for (float[] held : q) {
                if (held == a) {
                    idleBytes.addAndGet(-b);
                    throw new IllegalStateException("a tensor array of " + a.length + " floats was given back twice");
                }
            }
            if (q.offer(a)) {
                return;
            }
        }
        idleBytes.addAndGet(-b);
    }

    /** Bytes of the arrays idle in the pool (the {@code moemesh_hop_tensor_pool_bytes_idle} gauge). */
    public long idleBytes() {
        return idleBytes.get();
    }

    private static long bytes(float[] a) {
        return 4L * a.length;
    }
}
