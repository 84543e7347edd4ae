package io.moemesh.router.reports;

import io.moemesh.router.placement.RouteStats;
import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.prediction.PathPredictor;
import io.moemesh.router.prediction.PredictionContext;
import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The routes the gateways report: validated, scored against the predictor (online recall, before learning), learned
 * by the predictor, and kept for the planner in a sliding window of the latest {@code windowTokens} tokens, so memory
 * stays bounded however long the router runs (a token of a 32-layer top-2 model costs about 1.5 KiB in the window; the
 * predictor's count tables have fixed sizes but for the per-token ones, capped at a byte budget, RouteCounts).
 * The window, not all history, is what a replan plans from: placement should follow the current traffic.
 *
 * <p>Thread-safe: every method that reads or changes the window, the counters or the predictor holds the book's lock
 * (the predictors are not thread-safe; ingestion and prediction are short: a report message is at most
 * {@link #MAX_SAMPLES_PER_MESSAGE} tokens); the checks against the model read only final fields and take no lock.
 */
public final class RouteBook {
    /** Samples one report message may carry (router.v1 ReportRoutesRequest.samples). */
    public static final int MAX_SAMPLES_PER_MESSAGE = 4096;
    /**
     * UTF-8 bytes a reported request id may have (router.v1 RouteSample.request_id; PredictPaths'
     * SequenceQuery.request_id has the same bound). Ids are kept: in every window token's key (up to windowTokens of
     * them, and in the routes.json snapshot) and as sequence context; unbounded, one gateway could grow the router's
     * memory and snapshot by megabytes per token. Room for the gateway's ids (its watcher id, a start time and a
     * sequence number) with a 253-byte DNS-name watcher id.
     */
    public static final int MAX_REQUEST_ID_BYTES = 512;
    /** Requests whose latest token is kept as the next token's sequence context (least recently reported dropped). */
    static final int CONTEXT_REQUESTS = 4096;

    /** A request's latest sampled token and its position. */
    private record Latest(long position, TokenRoute route) {
    }

    private final ModelShape shape;
    private final PathPredictor predictor;
    private final int windowTokens;
    /** The model's vocabulary size; 0 = not known (token ids are then only checked for >= -1). */
    private final int vocabSize;
    private final ArrayDeque<TokenRoute> window = new ArrayDeque<>();
    private final Map<String, Latest> lastOfRequest = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Latest> eldest) {
            return size() > CONTEXT_REQUESTS;
        }
    };
    private OnlineRecall recall = OnlineRecall.NONE;
    private long ingested;
    private long dropped;
    private long sequence;

    /**
     * @param shape        the model's layers (decoder layers 0..layers-1), routed experts and top-k
     * @param predictor    an untrained (or restored) predictor for {@code shape}
     * @param windowTokens tokens the planner's window keeps, ≥ 1
     */
    public RouteBook(ModelShape shape, PathPredictor predictor, int windowTokens) {
        this(shape, predictor, windowTokens, 0);
    }

    /**
     * @param vocabSize the model's vocabulary size (config.json vocab_size): token ids at or above it are refused;
     *                  0 = not known
     */
    public RouteBook(ModelShape shape, PathPredictor predictor, int windowTokens, int vocabSize) {
        if (windowTokens < 1) {
            throw new IllegalArgumentException("the route window needs at least 1 token, got " + windowTokens);
        }
        if (vocabSize < 0) {
            throw new IllegalArgumentException("vocabSize must be >= 0 (0 = not known), got " + vocabSize);
        }
        this.shape = shape;
        this.predictor = predictor;
        this.windowTokens = windowTokens;
        this.vocabSize = vocabSize;
    }

    public ModelShape shape() {
        return shape;
    }

    public String predictorName() {
        return predictor.name();
    }

    /**
     * Validates a report message as a whole and ingests it: nothing of it is ingested when any sample is malformed.
     *
     * @return samples ingested
     * @throws IllegalArgumentException naming the first bad field ({@code samples[i].route.layers[j].experts[k]}); its
     *                                  samples are counted as dropped
     */
    public synchronized int ingest(List<ReportedToken> samples) {
        List<TokenRoute> routes;
        try {
            routes = validate(samples);
        } catch (IllegalArgumentException e) {
            dropped += samples.size();
            throw e;
        }
        for (int i = 0; i < routes.size(); i++) {
            ReportedToken sample = samples.get(i);
            String request = sample.requestId();
            TokenRoute t = routes.get(i);
            Latest latest = request.isEmpty() ? null : lastOfRequest.get(request);
            // Only the true neighbour (position - 1) is the previous token, as PredictPaths uses it: gateways sample a
            // fraction of positions, so the request's latest sample is usually several positions back.
            TokenRoute previous = latest != null && latest.position() == sample.position() - 1 ? latest.route() : null;
            List<TokenRoute> recent = previous == null ? List.of() : List.of(previous);
            score(t, recent);
            predictor.learn(t, recent);
            remember(t);
            if (!request.isEmpty()) {
                lastOfRequest.put(request, new Latest(sample.position(), t));
            }
        }
        ingested += routes.size();
        return routes.size();
    }

    /** Learns routes restored from a snapshot (oldest first), without scoring them, into the window. */
    public synchronized void restore(List<TokenRoute> tokens, long ingestedBefore, OnlineRecall recallBefore) {
        for (TokenRoute t : tokens) {
            if (t.layers() != shape.layers()) {
                throw new IllegalArgumentException("snapshot token " + t.key() + " has " + t.layers()
                        + " layers, the model " + shape.layers());
            }
            for (int[] es : t.experts()) {
                for (int e : es == null ? new int[0] : es) {
                    if (e < 0 || e >= shape.experts()) {
                        throw new IllegalArgumentException("snapshot token " + t.key() + " routes to expert " + e
                                + ", the model has " + shape.experts());
                    }
                }
            }
            predictor.learn(t);
            remember(t);
        }
        ingested = ingestedBefore;
        recall = recallBefore;
    }

    /**
     * The {@code n} experts most likely at {@code layer} for a token with {@code tokenId} whose routes at the layers
     * in {@code known} (null entries elsewhere; only layers below {@code layer} are used) are observed, after
     * {@code previous} (null: none) in its sequence.
     */
    public synchronized int[] predict(int tokenId, int[][] known, TokenRoute previous, int layer, int n) {
        int[][] below = new int[shape.layers()][];
        for (int l = 0; l < layer && l < known.length; l++) {
            below[l] = known[l];
        }
        return predictor.predict(new PredictionContext(tokenId, previous == null ? List.of() : List.of(previous),
                below), layer, n);
    }

    /** The window as a trace (layers numbered from 0), oldest token first. */
    public synchronized RouteTrace windowTrace() {
        return new RouteTrace("the router's route window", 0, shape.layers(), shape.experts(), shape.topK(),
                List.copyOf(window));
    }

    /** The planner's statistics from the window, or null when it holds fewer than {@code minTokens} tokens. */
    public RouteStats stats(int minTokens) {
        RouteTrace trace = windowTrace();
        return trace.tokens().size() < Math.max(1, minTokens) ? null : RouteStats.of(trace);
    }

    public synchronized OnlineRecall recall() {
        return recall;
    }

    /** Samples ingested since the router first started (restored from snapshots). */
    public synchronized long ingested() {
        return ingested;
    }

    /** Samples of refused report messages since this process started. */
    /** Counts {@code samples} as dropped: a report message refused as a whole before its samples were validated. */
    public synchronized void countDropped(int samples) {
        if (samples < 0) {
            throw new IllegalArgumentException("samples must be >= 0, got " + samples);
        }
        dropped += samples;
    }

    public synchronized long dropped() {
        return dropped;
    }

    public synchronized int windowSize() {
        return window.size();
    }

    /** Estimated (token, expert) pairs per expert summed over the window's layers: [layer][expert]. */
    public synchronized long[][] expertLoad() {
        long[][] load = new long[shape.layers()][shape.experts()];
        for (TokenRoute t : window) {
            for (int l = 0; l < shape.layers(); l++) {
                if (t.experts()[l] != null) {
                    for (int e : t.experts()[l]) {
                        load[l][e]++;
                    }
                }
            }
        }
        return load;
    }

    private void remember(TokenRoute t) {
        if (window.size() == windowTokens) {
            window.removeFirst();
        }
        window.addLast(t);
    }

    /** Next-layer recall (1 layer ahead) of every layer of {@code t} whose previous layer is known. */
    private void score(TokenRoute t, List<TokenRoute> recent) {
        int k = shape.topK();
        int guesses = Math.min(2 * k, shape.experts());
        long truths = 0;
        long hitsK = 0;
        long hits2K = 0;
        for (int l = 1; l < t.layers(); l++) {
            if (t.experts()[l] == null || t.experts()[l - 1] == null) {
                continue;
            }
            int[] guess = predictor.predict(PredictionContext.of(t, recent, l - 1), l, guesses);
            for (int e : t.experts()[l]) {
                truths++;
                for (int g = 0; g < guess.length; g++) {
                    if (guess[g] == e) {
                        hits2K++;
                        if (g < k) {
                            hitsK++;
                        }
                        break;
                    }
                }
            }
        }
        recall = recall.plus(truths, hitsK, hits2K);
    }

    private List<TokenRoute> validate(List<ReportedToken> samples) {
        if (samples.size() > MAX_SAMPLES_PER_MESSAGE) {
            throw new IllegalArgumentException("samples: " + samples.size() + " in one message, at most "
                    + MAX_SAMPLES_PER_MESSAGE);
        }
        List<TokenRoute> routes = new ArrayList<>(samples.size());
        for (int i = 0; i < samples.size(); i++) {
            checkIdLength(samples.get(i).requestId(), MAX_REQUEST_ID_BYTES, "samples[" + i + "].request_id");
            routes.add(toRoute(samples.get(i), "samples[" + i + "].route"));
        }
        return routes;
    }

    /**
     * Refuses an id longer than {@code maxBytes} in UTF-8.
     *
     * @param field its field name in the error message ({@code samples[3].request_id})
     */
    public static void checkIdLength(String id, int maxBytes, String field) {
        // A char is at least one UTF-8 byte: only a short enough string needs encoding to be measured.
        if (id.length() > maxBytes || id.getBytes(StandardCharsets.UTF_8).length > maxBytes) {
            throw new IllegalArgumentException(field + ": longer than " + maxBytes + " bytes (UTF-8)");
        }
    }

    /**
     * Checks a token id against the model: in [0, vocab_size), or -1 when not known.
     *
     * @param field its field name in the error message ({@code samples[3].route.token_id})
     */
    public void checkTokenId(int tokenId, String field) {
        if (tokenId < -1 || (vocabSize > 0 && tokenId >= vocabSize)) {
            throw new IllegalArgumentException(field + ": " + tokenId + " is not a token id (in [0, "
                    + (vocabSize > 0 ? Integer.toString(vocabSize) : "vocab_size") + "), or -1 when not known)");
        }
    }

    /**
     * A reported route as a {@link TokenRoute} for the window, checked against the model, named by its request id,
     * position and a sequence number (unique in the window). Called under the book's lock ({@link #ingest}), after
     * the request id's length was checked.
     *
     * @param field the route's field name in error messages ({@code samples[3].route})
     */
    private TokenRoute toRoute(ReportedToken sample, String field) {
        String key = (sample.requestId().isEmpty() ? "report" : sample.requestId()) + ":" + sample.position() + "#"
                + (++sequence);
        return checkRoute(sample, field, key);
    }

    /**
     * A route PredictPaths is given as context (SequenceQuery.observed), checked against the model as a reported one.
     * It is only read while its sequence is predicted, never kept, so it is named by its position alone: a copy of
     * the request id in each of a sequence's observed routes would multiply the id by their number.
     *
     * @param field the route's field name in error messages ({@code sequences[0].observed[3]})
     */
    public TokenRoute toObservedRoute(ReportedToken sample, String field) {
        return checkRoute(sample, field, "observed:" + sample.position());
    }

    /** Checks {@code sample} against the model (shape and vocabulary, both final: no lock needed). */
    private TokenRoute checkRoute(ReportedToken sample, String field, String key) {
        checkTokenId(sample.tokenId(), field + ".token_id");
        if (sample.layers().isEmpty()) {
            throw new IllegalArgumentException(field + ".layers: no layers reported");
        }
        int[][] experts = new int[shape.layers()][];
        float[][] weights = new float[shape.layers()][];
        long last = -1;
        for (int j = 0; j < sample.layers().size(); j++) {
            ReportedLayer lr = sample.layers().get(j);
            String lf = field + ".layers[" + j + "]";
            if (lr.layer() < 0 || lr.layer() >= shape.layers()) {
                throw new IllegalArgumentException(lf + ".layer: layer " + lr.layer() + " is not in [0, " + shape.layers()
                        + ") (the model's layers)");
            }
            if (lr.layer() <= last) {
                throw new IllegalArgumentException(lf + ".layer: layer " + lr.layer() + " after layer " + last
                        + " (layers must ascend, each at most once)");
            }
            last = lr.layer();
            if (lr.experts().length != shape.topK()) {
                throw new IllegalArgumentException(lf + ".experts: " + lr.experts().length + " experts, the model's gate "
                        + "picks top_k = " + shape.topK());
            }
            int[] es = new int[lr.experts().length];
            Set<Integer> seen = new HashSet<>();
            for (int k = 0; k < es.length; k++) {
                long e = lr.experts()[k];
                if (e < 0 || e >= shape.experts()) {
                    throw new IllegalArgumentException(lf + ".experts[" + k + "]: expert " + e + " is not in [0, "
                            + shape.experts() + ") (the model's routed experts)");
                }
                if (!seen.add((int) e)) {
                    throw new IllegalArgumentException(lf + ".experts[" + k + "]: expert " + e + " is listed twice");
                }
                es[k] = (int) e;
            }
            float[] ws = lr.weights();
            if (ws.length != 0 && ws.length != es.length) {
                throw new IllegalArgumentException(lf + ".weights: " + ws.length + " weights for " + es.length
                        + " experts (parallel to experts, or empty)");
            }
            float[] w = new float[es.length];
            for (int k = 0; k < ws.length; k++) {
                if (!Float.isFinite(ws[k]) || ws[k] < 0) {
                    throw new IllegalArgumentException(lf + ".weights[" + k + "]: " + ws[k] + " is not a finite weight"
                            + " >= 0");
                }
                w[k] = ws[k];
            }
            experts[(int) lr.layer()] = es;
            weights[(int) lr.layer()] = w;
        }
        return new TokenRoute(key, sample.tokenId(), experts, weights);
    }
}
