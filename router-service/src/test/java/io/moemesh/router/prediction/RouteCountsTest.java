package io.moemesh.router.prediction;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.router.trace.TokenRoute;
import org.junit.jupiter.api.Test;

class RouteCountsTest {
    static final ModelShape SHAPE = new ModelShape(2, 4, 1);

    static TokenRoute token(int id, int expert) {
        return new TokenRoute("t" + id, id, new int[][] {{expert}, {expert}}, new float[][] {{1f}, {1f}});
    }

    @Test
    void perTokenTables_stayWithinTheirByteBudget_andIdsSeenBeforeTheCapKeepLearning() {
        // One table is 2 layers × (4 + 1) ints = 40 bytes; 400 bytes for both maps = 5 ids each.
        RouteCounts counts = new RouteCounts(SHAPE, 400);
        TokenRoute previous = null;
        for (int id = 0; id < 1000; id++) {
            TokenRoute t = token(id, id % 4);
            counts.add(t, previous);
            previous = t;
        }
        assertThat(counts.trackedTokens(false)).isEqualTo(5);
        assertThat(counts.trackedTokens(true)).isEqualTo(5);
        double[] out = new double[4];
        double[] prior = {0.25, 0.25, 0.25, 0.25};
        assertThat(counts.tokenDistribution(999, false, 0, prior, 0, out)).as("past the cap: not tracked").isFalse();
        counts.add(token(3, 1), null);
        assertThat(counts.tokenDistribution(3, false, 0, prior, 0, out)).isTrue();
        assertThat(out).containsExactly(0, 0.5, 0, 0.5);
    }

    @Test
    void defaultBudget_holdsAWholeMixtralVocabulary_andCapsALargeOne() {
        long mixtralTable = 4L * 32 * (8 + 1);
        assertThat(RouteCounts.TOKEN_TABLE_BUDGET_BYTES / 2 / mixtralTable).isGreaterThanOrEqualTo(32_000);
        long qwenTable = 4L * 24 * (60 + 1);
        assertThat(2 * (RouteCounts.TOKEN_TABLE_BUDGET_BYTES / 2 / qwenTable) * qwenTable)
                .isLessThanOrEqualTo(RouteCounts.TOKEN_TABLE_BUDGET_BYTES);
    }
}
