package io.moemesh.router.prediction;

import java.util.List;

/**
 * Recall of one predictor on one test trace: for each gap ("ahead") and each target layer, the mean over scored
 * predictions of |predicted ∩ true| / |true| with k and with 2k guesses.
 *
 * @param predictor  the predictor's name
 * @param firstLayer the file's number of layer index 0
 * @param experts    experts per layer (chance with g guesses is g / experts)
 * @param topK       k
 * @param aheads     the gaps evaluated, e.g. 1, 2, 4
 * @param rows       one per (ahead, layer index) that had a scored prediction, ahead then layer ascending
 */
public record EvalResult(String predictor, int firstLayer, int experts, int topK, List<Integer> aheads,
                         List<Row> rows) {

    public EvalResult {
        aheads = List.copyOf(aheads);
        rows = List.copyOf(rows);
    }

    /**
     * The recall at one (ahead, layer).
     *
     * @param ahead     layers ahead
     * @param layer     layer index predicted
     * @param scored    predictions scored
     * @param recallK   mean recall with k guesses
     * @param recall2K  mean recall with 2k guesses
     */
    public record Row(int ahead, int layer, long scored, double recallK, double recall2K) {
    }

    /** Chance recall with k guesses (k / experts). */
    public double chanceK() {
        return (double) topK / experts;
    }

    /** Chance recall with 2k guesses. */
    public double chance2K() {
        return Math.min(1.0, 2.0 * topK / experts);
    }

    /** The mean over every scored prediction at {@code ahead} (all layers pooled, weighted by predictions). */
    public Row overall(int ahead) {
        long scored = 0;
        double k = 0;
        double k2 = 0;
        for (Row r : rows) {
            if (r.ahead() == ahead) {
                scored += r.scored();
                k += r.recallK() * r.scored();
                k2 += r.recall2K() * r.scored();
            }
        }
        return new Row(ahead, -1, scored, scored == 0 ? Double.NaN : k / scored, scored == 0 ? Double.NaN : k2 / scored);
    }
}
