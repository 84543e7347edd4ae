package io.moemesh.gateway.routing;

import io.moemesh.model.engine.RouteObserver;
import io.moemesh.model.engine.StepContext;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.atomic.LongAdder;

/**
 * Samples the engine's observed routes for the router (router.v1 ReportRoutes): a {@link RouteObserver} that picks
 * a fraction of the tokens, assembles each picked token's route over every layer of its step, and queues it for the
 * {@link RouteReporter}. On the engine thread's decode path, so it never blocks and allocates only for the tokens
 * it picks: the queue is bounded ({@code maxQueued}) and a route that does not fit is dropped and counted.
 *
 * <p>Which tokens: a hash of (sequence id, position) below {@code sampleRate}, so the choice is the same whatever the
 * batch a token lands in, and tests can tell which tokens will be reported ({@link #sampled}). A step whose layer 0
 * this observer did not see, or that fails before its last layer, reports nothing.
 */
public final class RouteSampler implements RouteObserver {
    private final int layers;
    private final int topK;
    private final double sampleRate;
    private final BlockingQueue<SampledRoute> queue;
    private final LongAdder queued = new LongAdder();
    private final LongAdder dropped = new LongAdder();
    /** The step being assembled (engine thread only) and its picked rows. */
    private StepContext step;
    private int count;
    private int[] rows = new int[16];
    private SampledRoute[] routes = new SampledRoute[16];

    /**
     * @param layers     the model's decoder layers (a route is complete after the last)
     * @param topK       routed experts per token and layer
     * @param sampleRate fraction of tokens reported, in (0, 1]
     * @param maxQueued  routes waiting for the reporter at most, >= 1
     */
    public RouteSampler(int layers, int topK, double sampleRate, int maxQueued) {
        if (!(sampleRate > 0 && sampleRate <= 1) || maxQueued < 1 || layers < 1 || topK < 1) {
            throw new IllegalArgumentException("route sampler: need layers, top-k, max queued >= 1 and a sample rate "
                    + "in (0, 1], got " + layers + ", " + topK + ", " + maxQueued + ", " + sampleRate);
        }
        this.layers = layers;
        this.topK = topK;
        this.sampleRate = sampleRate;
        this.queue = new ArrayBlockingQueue<>(maxQueued);
    }

    /** Whether the token at {@code position} of sequence {@code sequence} is reported at {@code rate}. */
    public static boolean sampled(long sequence, int position, double rate) {
        if (rate >= 1) {
            return true;
        }
        // SplitMix64's finaliser over both ids: uniform 53-bit fraction.
        long z = sequence * 0x9E3779B97F4A7C15L + position + 0x632BE59BD9B4E019L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (z >>> 11) * 0x1.0p-53 < rate;
    }

    public double sampleRate() {
        return sampleRate;
    }

    @Override
    public void onRoutes(StepContext s, int layer, int[] experts, float[] weights, int pairsPerToken) {
        if (layer == 0) {
            start(s);
        } else if (s != step) {
            return;
        }
        int off = layer * topK;
        for (int i = 0; i < count; i++) {
            int r = rows[i];
            System.arraycopy(experts, r * pairsPerToken, routes[i].experts(), off, topK);
            System.arraycopy(weights, r * pairsPerToken, routes[i].weights(), off, topK);
        }
        if (layer == layers - 1) {
            for (int i = 0; i < count; i++) {
                if (queue.offer(routes[i])) {
                    queued.increment();
                } else {
                    dropped.increment();
                }
                routes[i] = null;
            }
            count = 0;
            step = null;
        }
    }

    private void start(StepContext s) {
        step = s;
        for (int i = 0; i < count; i++) {
            routes[i] = null;
        }
        count = 0;
        for (int r = 0; r < s.rows(); r++) {
            long seq = s.seqId(r);
            int pos = s.position(r);
            if (!sampled(seq, pos, sampleRate)) {
                continue;
            }
            if (count == rows.length) {
                rows = java.util.Arrays.copyOf(rows, count * 2);
                routes = java.util.Arrays.copyOf(routes, count * 2);
            }
            rows[count] = r;
            routes[count++] = new SampledRoute(seq, pos, s.token(r), s.prefill(r), new int[layers * topK],
                    new float[layers * topK]);
        }
    }

    /** Takes up to {@code max} queued routes, oldest first (any thread). */
    public List<SampledRoute> drain(int max) {
        List<SampledRoute> out = new ArrayList<>(Math.min(max, queue.size()));
        queue.drainTo(out, max);
        return out;
    }

    /** Routes waiting for the reporter. */
    public int waiting() {
        return queue.size();
    }

    /** Routes queued for reporting since start. */
    public long queued() {
        return queued.sum();
    }

    /** Sampled routes dropped because the queue was full. */
    public long dropped() {
        return dropped.sum();
    }

    public int layers() {
        return layers;
    }

    public int topK() {
        return topK;
    }
}
