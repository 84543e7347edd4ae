package io.moemesh.model.synth;

import io.moemesh.model.safetensors.SafetensorsWriter.Tensor;
import io.moemesh.model.safetensors.SafetensorsWriter.TensorData;
import io.moemesh.model.safetensors.SafetensorsWriter.TensorSink;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Random tensor values: normal(0, 0.1) for weights and biases, 1 + normal(0, 0.1) for RMSNorm weights.
 *
 * <p>Each tensor is cut into chunks of {@link #CHUNK} elements, and chunk {@code c} of tensor {@code name} is drawn
 * from its own {@link SplittableRandom} seeded by (seed, name, c) — so every value is a pure function of the seed,
 * the tensor name and the element index, whatever the thread count or the other tensors. Chunks are generated on a
 * thread pool a few chunks ahead of the writer and handed to it strictly in order.
 */
final class SynthValues implements TensorData, AutoCloseable {

    static final int CHUNK = 1 << 20;
    static final double STD = 0.1;

    private record Job(String name, long chunk, int length, Future<float[]> values) {
    }

    private final long seed;
    private final List<Tensor> tensors;
    private final ExecutorService pool;
    private final int window;
    private final Deque<Job> inFlight = new ArrayDeque<>();
    private final ConcurrentLinkedQueue<float[]> spare = new ConcurrentLinkedQueue<>();
    private int nextTensor;
    private long nextChunk;

    SynthValues(long seed, List<Tensor> tensors, int threads) {
        this.seed = seed;
        this.tensors = List.copyOf(tensors);
        AtomicInteger n = new AtomicInteger();
        this.pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "synth-values-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.window = 2 * threads + 2;
    }

    @Override
    public void write(Tensor tensor, TensorSink sink) throws IOException {
        long chunks = chunks(tensor);
        for (long c = 0; c < chunks; c++) {
            submitAhead();
            Job job = inFlight.poll();
            if (job == null || !job.name().equals(tensor.name()) || job.chunk() != c) {
                throw new IllegalStateException("tensor " + tensor.name() + " requested out of declaration order");
            }
            float[] values = await(job.values());
            sink.putFloats(values, 0, job.length());
            spare.offer(values);
        }
    }

    @Override
    public void close() {
        pool.shutdownNow();
    }

    /** Fills {@code dst[0, length)} with chunk {@code chunk} of tensor {@code name}. */
    static void fill(long seed, String name, long chunk, float[] dst, int length) {
        SplittableRandom random = new SplittableRandom(chunkSeed(seed, name, chunk));
        double mean = SynthLayout.isNorm(name) ? 1.0 : 0.0;
        for (int i = 0; i < length; i++) {
            dst[i] = (float) (mean + STD * random.nextGaussian());
        }
    }

    static long chunkSeed(long seed, String name, long chunk) {
        long h = 0xCBF29CE484222325L; // FNV-1a over the UTF-8 name
        for (byte b : name.getBytes(StandardCharsets.UTF_8)) {
            h = (h ^ (b & 0xFF)) * 0x100000001B3L;
        }
        long s = mix64(seed + 0x9E3779B97F4A7C15L);
        s = mix64(s ^ h);
        return mix64(s + (chunk + 1) * 0x9E3779B97F4A7C15L);
    }

    /** SplitMix64's finaliser. */
    private static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static long chunks(Tensor tensor) {
        return (tensor.elements() + CHUNK - 1) / CHUNK;
    }

    /** Keeps {@link #window} chunks (across tensor boundaries) generating ahead of the writer. */
    private void submitAhead() {
        while (inFlight.size() < window && nextTensor < tensors.size()) {
            Tensor t = tensors.get(nextTensor);
            if (nextChunk >= chunks(t)) {
                nextTensor++;
                nextChunk = 0;
                continue;
            }
            String name = t.name();
            long chunk = nextChunk++;
            int length = (int) Math.min(CHUNK, t.elements() - chunk * CHUNK);
            inFlight.add(new Job(name, chunk, length, pool.submit(() -> {
                float[] dst = spare.poll();
                if (dst == null) {
                    dst = new float[CHUNK];
                }
                fill(seed, name, chunk, dst, length);
                return dst;
            })));
        }
    }

    private static float[] await(Future<float[]> future) throws IOException {
        try {
            return future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while generating synthetic weights");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new IOException(e.getCause());
        }
    }
}
