package io.moemesh.model.generate;

import java.util.Arrays;

/** One sequence inside the {@link StepScheduler}: its tokens, progress and sampler. */
final class SequenceState {
    final long id;
    final GenerationRequest request;
    final SequenceListener listener;
    final String tenant;
    final Sampler sampler;
    /** Positions already in the KV cache. */
    int prefilled;
    float[] lastLogits;
    /** Set at the first admission: prompt positions the prefix cache had (-1 before). */
    int cachedPromptTokens = -1;
    private int[] generated = new int[16];
    private int count;
    private int[][][] routes;
    private float[][][] routeWeights;
    /** Set after a preemption: the context is recomputed without sampling, then decoding resumes. */
    private boolean resuming;
    private volatile boolean cancelled;
    /** Handle.stop: finish at the next step boundary with a result (set by any thread, read by the engine's). */
    private volatile boolean stopRequested;

    SequenceState(long id, GenerationRequest request, SequenceListener listener, String tenant) {
        this.id = id;
        this.tenant = tenant;
        this.request = request;
        this.listener = listener;
        this.sampler = new Sampler(request.params());
    }

    int promptLength() {
        return request.promptIds().length;
    }

    int length() {
        return promptLength() + count;
    }

    int generatedCount() {
        return count;
    }

    int lastToken() {
        return generated[count - 1];
    }

    /** Prefill covers the prompt, or after a preemption every token but the last generated one. */
    int prefillTarget() {
        return resuming ? length() - 1 : promptLength();
    }

    boolean decoding() {
        return count > 0 && !resuming && prefilled >= prefillTarget();
    }

    /** Positions whose KV the cache holds now: the prefill so far, or every token but the last sampled one. */
    int cachedPositions() {
        return decoding() ? length() - 1 : prefilled;
    }

    boolean admittedBefore() {
        return cachedPromptTokens >= 0;
    }

    boolean resuming() {
        return resuming;
    }

    /** Tokens [from, from + n) of prompt followed by generated tokens. */
    int[] context(int from, int n) {
        int[] out = new int[n];
        int p = promptLength();
        for (int i = 0; i < n; i++) {
            int pos = from + i;
            out[i] = pos < p ? request.promptIds()[pos] : generated[pos - p];
        }
        return out;
    }

    void add(int token) {
        if (count == generated.length) {
            generated = Arrays.copyOf(generated, count * 2);
        }
        generated[count++] = token;
    }

    void preempt() {
        prefilled = 0;
        if (count == 0) {
            routes = null;
            routeWeights = null;
        }
        resuming = count > 0;
    }

    void resumed() {
        resuming = false;
    }

    void cancel() {
        cancelled = true;
    }

    void stop() {
        stopRequested = true;
    }

    boolean stopRequested() {
        return stopRequested;
    }

    boolean cancelled() {
        return cancelled;
    }

    void appendRoutes(int[][][] chunk, float[][][] weights) {
        routes = append(routes, chunk);
        routeWeights = append(routeWeights, weights);
    }

    private static <T> T[][] append(T[][] sofar, T[][] chunk) {
        if (sofar == null) {
            return chunk;
        }
        T[][] out = Arrays.copyOf(sofar, sofar.length);
        for (int l = 0; l < sofar.length; l++) {
            out[l] = Arrays.copyOf(sofar[l], sofar[l].length + chunk[l].length);
            System.arraycopy(chunk[l], 0, out[l], sofar[l].length, chunk[l].length);
        }
        return out;
    }

    GenerationResult result(FinishReason reason) {
        return new GenerationResult(request.promptIds(), Arrays.copyOf(generated, count), reason, lastLogits, routes,
                routeWeights, Math.max(0, cachedPromptTokens));
    }
}
