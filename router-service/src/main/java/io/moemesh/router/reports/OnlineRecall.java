package io.moemesh.router.reports;

/**
 * Online next-layer recall of the predictor on reported routes, counted as issue 10's evaluation rule does: each
 * token's experts at layer L are predicted from its routes up to L − 1 (and the tokens of its request before it)
 * BEFORE the token is learned. Recall with n guesses = true experts among the n best guesses / true experts.
 *
 * @param truths    true (token, layer, expert) triples scored
 * @param hitsK     of those, found among the top-k guesses
 * @param hits2K    of those, found among the top-2k guesses
 */
public record OnlineRecall(long truths, long hitsK, long hits2K) {
    public static final OnlineRecall NONE = new OnlineRecall(0, 0, 0);

    /** Recall with k guesses, 0 before anything was scored. */
    public double recallK() {
        return truths == 0 ? 0 : (double) hitsK / truths;
    }

    /** Recall with 2k guesses, 0 before anything was scored. */
    public double recall2K() {
        return truths == 0 ? 0 : (double) hits2K / truths;
    }

    OnlineRecall plus(long t, long k, long k2) {
        return new OnlineRecall(truths + t, hitsK + k, hits2K + k2);
    }
}
