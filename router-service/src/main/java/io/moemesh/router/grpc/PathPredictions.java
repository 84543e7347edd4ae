package io.moemesh.router.grpc;

import io.moemesh.proto.router.v1.PredictPathsRequest;
import io.moemesh.proto.router.v1.PredictPathsResponse;
import io.moemesh.proto.router.v1.PredictedLayer;
import io.moemesh.proto.router.v1.PredictedPosition;
import io.moemesh.proto.router.v1.SequencePrediction;
import io.moemesh.proto.router.v1.SequenceQuery;
import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.reports.ReportedToken;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.trace.TokenRoute;
import java.util.HashMap;
import java.util.Map;
import java.util.function.LongSupplier;

/**
 * PredictPaths (router.proto): a request checked against the bounds on what one call may carry and on what its
 * answer may hold, then answered from the route book's predictor, one (token, layer) at a time. A request past a
 * bound is an IllegalArgumentException naming the field (INVALID_ARGUMENT), before anything is predicted.
 */
final class PathPredictions {
    /** Sequences one PredictPaths call may carry. */
    static final int MAX_SEQUENCES = 1024;
    /** Tokens one sequence of PredictPaths may carry. */
    static final int MAX_TOKENS = 4096;
    /**
     * Observed routes one sequence of PredictPaths may carry: as many as it may use, one more than it may have
     * tokens. A token uses its own route (layers below from_layer) and the one at position - 1, so its largest
     * sequence uses the routes at first_position - 1 .. first_position + MAX_TOKENS - 1. Each becomes a checked
     * route (arrays for every layer) held until its sequence is predicted; only the message size bounded them
     * before, and a 16 MiB message holds over a million one-layer routes.
     */
    static final int MAX_OBSERVED = MAX_TOKENS + 1;
    /** Observed routes one PredictPaths call may carry in all: bounds the checking one call makes the router do. */
    static final int MAX_OBSERVED_PER_CALL = 65_536;
    /** (token, layer) predictions one PredictPaths call may ask for: bounds the time it holds the predictor. */
    static final long MAX_PREDICTIONS = 65_536;
    /**
     * (token, layer, expert) entries one PredictPaths answer may hold: predictions × experts per prediction
     * (max_experts, or its default 2 × top_k). Keeps every accepted answer under 4 MiB, the inbound limit of gRPC
     * clients by default (grpc-java, grpc-go, Python, grpcurl), and bounds the memory one call's answer takes while it
     * is built: with every other bound at its worst (1024 sequences of 512-byte request ids, 65,536 predictions as 1
     * token × 64 layers each, 5-byte positions) and 256 experts the answer is 3.15 MB, and an expert index takes at
     * most 3 bytes more with any number of experts: at most 3.94 MB (PredictPathsAnswerSizeTest). Without it, 65,536
     * predictions of an OLMoE-shaped model (64 experts, default 16 per prediction) answered 5.8 MB, and 21.7 MB with
     * max_experts 64.
     */
    static final long MAX_PREDICTED_EXPERTS = 262_144;
    /** The largest token position (uint32 on the wire). */
    static final long MAX_POSITION = 0xFFFF_FFFFL;

    private final RouteBook book;
    private final LongSupplier currentEpoch;

    /** @param currentEpoch the placement epoch current at the router, echoed in each answer */
    PathPredictions(RouteBook book, LongSupplier currentEpoch) {
        this.book = book;
        this.currentEpoch = currentEpoch;
    }

    /**
     * The answer to {@code req}.
     *
     * @throws IllegalArgumentException naming the field that passes a bound
     */
    PredictPathsResponse answer(PredictPathsRequest req) {
        ModelShape shape = book.shape();
        if (req.getSequencesCount() == 0 || req.getSequencesCount() > MAX_SEQUENCES) {
            throw new IllegalArgumentException("sequences: " + req.getSequencesCount() + " sequences, need 1.."
                    + MAX_SEQUENCES);
        }
        long from = Integer.toUnsignedLong(req.getFromLayer());
        if (from >= shape.layers()) {
            throw new IllegalArgumentException("from_layer: layer " + from + " is not in [0, " + shape.layers() + ")");
        }
        long ahead = Integer.toUnsignedLong(req.getLookaheadLayers());
        int to = (int) (ahead == 0 ? shape.layers() : Math.min(shape.layers(), from + ahead));
        long max = Integer.toUnsignedLong(req.getMaxExperts());
        if (max > shape.experts()) {
            throw new IllegalArgumentException("max_experts: " + max + " is more than the model's " + shape.experts()
                    + " experts");
        }
        int n = max == 0 ? Math.min(2 * shape.topK(), shape.experts()) : (int) max;
        long predictions = 0;
        long observed = 0;
        for (int i = 0; i < req.getSequencesCount(); i++) {
            int tokens = req.getSequences(i).getTokenIdsCount();
            if (tokens == 0 || tokens > MAX_TOKENS) {
                throw new IllegalArgumentException("sequences[" + i + "].token_ids: " + tokens + " tokens, need 1.."
                        + MAX_TOKENS);
            }
            // Positions are uint32 on the wire: a later one would wrap to 0 in the answer.
            long first = Integer.toUnsignedLong(req.getSequences(i).getFirstPosition());
            if (first + tokens - 1 > MAX_POSITION) {
                throw new IllegalArgumentException("sequences[" + i + "].first_position: " + first + " with " + tokens
                        + " tokens puts the last at " + (first + tokens - 1) + ", past the largest position "
                        + MAX_POSITION + " (uint32)");
            }
            predictions += (long) tokens * (to - from);
            // RouteSample.request_id's bound (a gateway's ids fit it): the id is echoed in the answer.
            RouteBook.checkIdLength(req.getSequences(i).getRequestId(), RouteBook.MAX_REQUEST_ID_BYTES,
                    "sequences[" + i + "].request_id");
            int routes = req.getSequences(i).getObservedCount();
            if (routes > MAX_OBSERVED) {
                throw new IllegalArgumentException("sequences[" + i + "].observed: " + routes + " routes, at most "
                        + MAX_OBSERVED + " per sequence");
            }
            observed += routes;
            if (observed > MAX_OBSERVED_PER_CALL) {
                throw new IllegalArgumentException("sequences[" + i + "].observed: " + observed
                        + " routes in sequences[0.." + i + "], at most " + MAX_OBSERVED_PER_CALL + " per call");
            }
        }
        if (predictions > MAX_PREDICTIONS) {
            throw new IllegalArgumentException("sequences: " + predictions + " (token, layer) predictions asked, at most "
                    + MAX_PREDICTIONS + " per call (fewer tokens or lookahead_layers)");
        }
        if (predictions * n > MAX_PREDICTED_EXPERTS) {
            throw new IllegalArgumentException("max_experts: " + n + (max == 0 ? " (the default, 2 × top_k)" : "")
                    + " experts for each of " + predictions + " (token, layer) predictions is " + predictions * n
                    + " predicted experts, at most " + MAX_PREDICTED_EXPERTS + " per call, so the answer stays under "
                    + "4 MiB (fewer max_experts, lookahead_layers or tokens)");
        }
        PredictPathsResponse.Builder out = PredictPathsResponse.newBuilder()
                .setPlacementEpoch(currentEpoch.getAsLong()).setPredictor(book.predictorName());
        for (int i = 0; i < req.getSequencesCount(); i++) {
            out.addSequences(predictSequence(req.getSequences(i), "sequences[" + i + "]", (int) from, to, n));
        }
        return out.build();
    }

    private SequencePrediction predictSequence(SequenceQuery q, String field, int from, int to, int n) {
        Map<Long, TokenRoute> observed = new HashMap<>();
        for (int j = 0; j < q.getObservedCount(); j++) {
            ReportedToken t = RouteMessages.toReported(q.getRequestId(), q.getObserved(j));
            TokenRoute r = book.toObservedRoute(t, field + ".observed[" + j + "]");
            if (observed.put(t.position(), r) != null) {
                throw new IllegalArgumentException(field + ".observed[" + j + "].position: position " + t.position()
                        + " is observed twice");
            }
        }
        long first = Integer.toUnsignedLong(q.getFirstPosition());
        SequencePrediction.Builder sp = SequencePrediction.newBuilder().setRequestId(q.getRequestId());
        int tokens = q.getTokenIdsCount();
        PredictedLayer.Builder[] layers = new PredictedLayer.Builder[to - from];
        for (int l = from; l < to; l++) {
            layers[l - from] = PredictedLayer.newBuilder().setLayer(l);
        }
        for (int t = 0; t < tokens; t++) {
            long position = first + t;
            int tokenId = q.getTokenIds(t);
            book.checkTokenId(tokenId, field + ".token_ids[" + t + "]");
            TokenRoute own = observed.get(position);
            int[][] known = new int[book.shape().layers()][];
            if (own != null) {
                for (int l = 0; l < from; l++) {
                    known[l] = own.experts()[l];
                }
            }
            TokenRoute previous = observed.get(position - 1);
            for (int l = from; l < to; l++) {
                int[] experts = book.predict(tokenId, known, previous, l, n);
                PredictedPosition.Builder pp = PredictedPosition.newBuilder().setPosition((int) position);
                for (int r = 0; r < experts.length; r++) {
                    pp.addExperts(experts[r]).addScores(1f - (float) r / experts.length);
                }
                layers[l - from].addPositions(pp);
            }
        }
        for (PredictedLayer.Builder b : layers) {
            sp.addLayers(b);
        }
        return sp.build();
    }
}
