package io.moemesh.router.prediction;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The honest online evaluation of issue 10: the predictor learns the training file (tokens in file order), then
 * walks the test file in order; for each test token t with a full path and each (layer L, ahead A) with A
 * earlier layers in the file, it predicts L's experts from t's token id, the tokens before t in its sequence
 * (whole paths: they were computed) and t's own routes at layers ≤ L − A, and only then learns t (every test
 * token is learned, partial paths too, but only full paths are scored). Nothing else of the test file is seen.
 * Recall = |predicted ∩ true| / |true| with k and 2k guesses (k = the trace's top-k).
 *
 * <p>A token's sequence is its key without the last {@code ":<index>"} part (Mixtral: the problem; FLAME decode:
 * the sequence; FLAME prefill: one sequence, the file); its recent tokens are the latest {@value #RECENT} before it.
 */
public final class PredictionEval {

    /** The gaps evaluated: the next layer, two and four layers ahead. */
    public static final List<Integer> AHEADS = List.of(1, 2, 4);

    /** Tokens of the sequence given as context. */
    public static final int RECENT = 4;

    private PredictionEval() {
    }

    /**
     * Evaluates {@code predictorName} trained on {@code train} and scored on {@code test}; when {@code dump} is not
     * null, writes one JSON line per scored prediction ({@code {"key", "layer" (file numbering), "ahead",
     * "predicted" (2k experts, best first)}}).
     */
    public static EvalResult run(RouteTrace train, RouteTrace test, String predictorName, Writer dump) {
        train.requireSameModel(test);
        train.requireFullPaths();
        test.requireFullPaths();
        ModelShape shape = ModelShape.of(train);
        PathPredictor predictor = PathPredictors.named(predictorName, shape);
        Sequences trainSequences = new Sequences();
        for (TokenRoute t : train.tokens()) {
            predictor.learn(t, trainSequences.recent(t));
            trainSequences.append(t);
        }
        int k = shape.topK();
        int guesses = Math.min(2 * k, shape.experts());
        long[][] scored = new long[AHEADS.size()][shape.layers()];
        double[][] hitsK = new double[AHEADS.size()][shape.layers()];
        double[][] hits2K = new double[AHEADS.size()][shape.layers()];
        Sequences sequences = new Sequences();
        StringBuilder line = new StringBuilder();
        for (TokenRoute t : test.tokens()) {
            List<TokenRoute> recent = sequences.recent(t);
            if (t.fullPath()) {
                for (int a = 0; a < AHEADS.size(); a++) {
                    int ahead = AHEADS.get(a);
                    for (int l = ahead; l < shape.layers(); l++) {
                        int[] predicted = predictor.predict(PredictionContext.of(t, recent, l - ahead), l, guesses);
                        int[] truth = t.experts()[l];
                        scored[a][l]++;
                        hitsK[a][l] += overlap(predicted, Math.min(k, predicted.length), truth) / truth.length;
                        hits2K[a][l] += overlap(predicted, predicted.length, truth) / truth.length;
                        if (dump != null) {
                            write(dump, line, t.key(), test.layerNumber(l), ahead, predicted);
                        }
                    }
                }
            }
            predictor.learn(t, recent);
            sequences.append(t);
        }
        List<EvalResult.Row> rows = new ArrayList<>();
        for (int a = 0; a < AHEADS.size(); a++) {
            for (int l = 0; l < shape.layers(); l++) {
                if (scored[a][l] > 0) {
                    rows.add(new EvalResult.Row(AHEADS.get(a), l, scored[a][l], hitsK[a][l] / scored[a][l],
                            hits2K[a][l] / scored[a][l]));
                }
            }
        }
        return new EvalResult(predictor.name(), train.firstLayer(), shape.experts(), k, AHEADS, rows);
    }

    private static double overlap(int[] predicted, int guesses, int[] truth) {
        int hits = 0;
        for (int i = 0; i < guesses; i++) {
            for (int x : truth) {
                if (predicted[i] == x) {
                    hits++;
                }
            }
        }
        return hits;
    }

    private static void write(Writer dump, StringBuilder line, String key, int layer, int ahead, int[] predicted) {
        line.setLength(0);
        line.append("{\"key\": \"").append(key.replace("\\", "\\\\").replace("\"", "\\\"")).append("\", \"layer\": ")
                .append(layer).append(", \"ahead\": ").append(ahead).append(", \"predicted\": [");
        for (int i = 0; i < predicted.length; i++) {
            line.append(i == 0 ? "" : ", ").append(predicted[i]);
        }
        line.append("]}\n");
        try {
            dump.write(line.toString());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the dump: " + e.getMessage(), e);
        }
    }

    /** The latest tokens of each sequence seen so far. */
    private static final class Sequences {
        private final Map<String, ArrayDeque<TokenRoute>> bySequence = new HashMap<>();

        List<TokenRoute> recent(TokenRoute t) {
            ArrayDeque<TokenRoute> recent = bySequence.get(sequence(t));
            return recent == null ? List.of() : List.copyOf(recent);
        }

        void append(TokenRoute t) {
            ArrayDeque<TokenRoute> recent = bySequence.computeIfAbsent(sequence(t), s -> new ArrayDeque<>());
            recent.addLast(t);
            if (recent.size() > RECENT) {
                recent.removeFirst();
            }
        }

        private static String sequence(TokenRoute t) {
            int colon = t.key().lastIndexOf(':');
            return colon < 0 ? "" : t.key().substring(0, colon);
        }
    }
}
