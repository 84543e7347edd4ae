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
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The routes the gateways report: validated, scored against the predictor (online recall, before learning), learned
 * by the predictor, and kept for the planner in a sliding window of the latest {@code windowTokens} tokens, so memory
 * stays bounded however long the router runs (a token of a 32-layer top-2 model costs about 1.5 KiB in the window; the
 * predictor's count tables have fixed sizes but for the per-token ones, capped at a byte budget, RouteCounts).
 * The window, not all history, is what a replan plans from: placement should follow the current traffic.
 *
 * <p>Thread-safe. The predictor and the window are used under the book's lock (the predictors are not thread-safe).
 * Learning is what takes time (a full report message of {@link #MAX_SAMPLES_PER_MESSAGE} OLMoE-shaped tokens is
 * seconds of AdaGrad steps on one core), so {@link #ingest} scores and learns {@link #INGEST_CHUNK} tokens per hold of
 * the lock and releases it between them, and the lock is fair: a prediction (PredictPaths), a planning read of the
 * window (Replan) or a snapshot that waits for it gets it at the end of the current chunk, ahead of the rest of the
 * message, instead of behind the whole message. Those short readers take the lock at once when it is free, even
 * ahead of an ingestion waiting for its next chunk, so PredictPaths' many short holds are not each queued behind a
 * chunk. The counters and the window's size ({@link #ingested}, {@link #dropped}, {@link #recall},
 * {@link #windowSize}: the metrics and DescribeRouter) are read without the lock. The checks against the model read
 * only final fields and take no lock.
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
    /**
     * Tokens {@link #ingest} scores and learns per hold of the lock: about 30 ms on an OLMoE-shaped model (16 layers,
     * 64 experts, top-8: ~1.9 ms per token with the learned predictor on one core), a few ms on Mixtral's shape. The
     * most a reader waits for ingestion.
     */
    static final int INGEST_CHUNK = 16;

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
    /** Fair: a reader waiting at the end of a chunk goes before the ingestion's next chunk (see the class comment). */
    private final ReentrantLock lock = new ReentrantLock(true);
    /** Written under the lock; read without it. */
    private volatile OnlineRecall recall = OnlineRecall.NONE;
    /** The window's size, written under the lock with the window; read without it. */
    private volatile int windowSize;
    private final AtomicLong ingested = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    /** Numbers the window's keys; taken while a message is validated, outside the lock. */
    private final AtomicLong sequence = new AtomicLong();

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
     * The valid message is then scored and learned {@link #INGEST_CHUNK} tokens at a time, the lock released between
     * chunks; {@link #ingested} counts each chunk once it is learned.
     *
     * @return samples ingested
     * @throws IllegalArgumentException naming the first bad field ({@code samples[i].route.layers[j].experts[k]}); its
     *                                  samples are counted as dropped
     */
    public int ingest(List<ReportedToken> samples) {
        List<TokenRoute> routes;
        try {
            routes = validate(samples);
        } catch (IllegalArgumentException e) {
            dropped.addAndGet(samples.size());
            throw e;
        }
        for (int start = 0; start < routes.size(); start += INGEST_CHUNK) {
            int end = Math.min(routes.size(), start + INGEST_CHUNK);
            lock.lock();
            try {
                for (int i = start; i < end; i++) {
                    learn(samples.get(i), routes.get(i));
                }
            } finally {
                lock.unlock();
            }
            ingested.addAndGet(end - start);
        }
        return routes.size();
    }

    /** Scores and learns one valid sample, and keeps it in the window; under the lock. */
    private void learn(ReportedToken sample, TokenRoute t) {
        String request = sample.requestId();
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

    /** Takes the lock for a short read: at once when it is free (ahead of a waiting ingestion), else in turn. */
    private void lockToRead() {
        if (!lock.tryLock()) {
            lock.lock();
        }
    }

    /** Learns routes restored from a snapshot (oldest first), without scoring them, into the window. */
    public void restore(List<TokenRoute> tokens, long ingestedBefore, OnlineRecall recallBefore) {
        lock.lock();
        try {
            restoreLocked(tokens, ingestedBefore, recallBefore);
        } finally {
            lock.unlock();
        }
    }

    private void restoreLocked(List<TokenRoute> tokens, long ingestedBefore, OnlineRecall recallBefore) {
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
        ingested.set(ingestedBefore);
        recall = recallBefore;
    }

    /**
     * The {@code n} experts most likely at {@code layer} for a token with {@code tokenId} whose routes at the layers
     * in {@code known} (null entries elsewhere; only layers below {@code layer} are used) are observed, after
     * {@code previous} (null: none) in its sequence.
     */
    public int[] predict(int tokenId, int[][] known, TokenRoute previous, int layer, int n) {
        int[][] below = new int[shape.layers()][];
        for (int l = 0; l < layer && l < known.length; l++) {
            below[l] = known[l];
        }
        PredictionContext context = new PredictionContext(tokenId, previous == null ? List.of() : List.of(previous),
                below);
        lockToRead();
        try {
            return predictor.predict(context, layer, n);
        } finally {
            lock.unlock();
        }
    }

    /** The window as a trace (layers numbered from 0), oldest token first. */
    public RouteTrace windowTrace() {
        List<TokenRoute> tokens;
        lockToRead();
        try {
            tokens = List.copyOf(window);
        } finally {
            lock.unlock();
        }
        return new RouteTrace("the router's route window", 0, shape.layers(), shape.experts(), shape.topK(), tokens);
    }

    /** The planner's statistics from the window, or null when it holds fewer than {@code minTokens} tokens. */
    public RouteStats stats(int minTokens) {
        RouteTrace trace = windowTrace();
        return trace.tokens().size() < Math.max(1, minTokens) ? null : RouteStats.of(trace);
    }

    public OnlineRecall recall() {
        return recall;
    }

    /** Samples ingested since the router first started (restored from snapshots). */
    public long ingested() {
        return ingested.get();
    }

    /** Counts {@code samples} as dropped: a report message refused as a whole before its samples were validated. */
    public void countDropped(int samples) {
        if (samples < 0) {
            throw new IllegalArgumentException("samples must be >= 0, got " + samples);
        }
        dropped.addAndGet(samples);
    }

    /** Samples of refused report messages since this process started. */
    public long dropped() {
        return dropped.get();
    }

    public int windowSize() {
        return windowSize;
    }

    /** Estimated (token, expert) pairs per expert summed over the window's layers: [layer][expert]. */
    public long[][] expertLoad() {
        long[][] load = new long[shape.layers()][shape.experts()];
        lockToRead();
        try {
            for (TokenRoute t : window) {
                for (int l = 0; l < shape.layers(); l++) {
                    if (t.experts()[l] != null) {
                        for (int e : t.experts()[l]) {
                            load[l][e]++;
                        }
                    }
                }
            }
        } finally {
            lock.unlock();
        }
        return load;
    }

    private void remember(TokenRoute t) {
        if (window.size() == windowTokens) {
            window.removeFirst();
        }
        window.addLast(t);
        windowSize = window.size();
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
     * position and a sequence number (unique in the window). Called while {@link #ingest} validates a message, before
     * it takes the lock, after the request id's length was checked.
     *
     * @param field the route's field name in error messages ({@code samples[3].route})
     */
    private TokenRoute toRoute(ReportedToken sample, String field) {
        String key = (sample.requestId().isEmpty() ? "report" : sample.requestId()) + ":" + sample.position() + "#"
                + sequence.incrementAndGet();
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
