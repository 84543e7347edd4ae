package io.moemesh.router.prediction;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.moemesh.router.trace.TokenRoute;
import java.util.Arrays;
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

    static TokenRoute route(int tokenId, int first, int second) {
        return new TokenRoute("t" + tokenId, tokenId, new int[][] {{first}, {second}}, new float[][] {{1f}, {1f}});
    }

    @Test
    void aCountTotalReachingTheBound_halvesItsBlock_soNothingOverflows_andTheCountsFollowAShift() {
        RouteCounts counts = new RouteCounts(SHAPE, 400, 8);
        double[] out = new double[4];
        double[] prior = {0.25, 0.25, 0.25, 0.25};
        for (int i = 0; i < 7; i++) {
            counts.add(route(5, 0, 1), null);
        }
        counts.pairCounts(0, new int[] {0}, 1, out);
        assertThat(out).as("below the bound: exact").containsExactly(0, 7, 0, 0);
        counts.add(route(5, 0, 2), null); // the total reaches 8: 7 and 1 become 3 and 0
        counts.pairCounts(0, new int[] {0}, 1, out);
        assertThat(out).containsExactly(0, 3, 0, 0);
        // The routes shift to expert 2: with halving the old pairs fade; a never-reset count would stay 50/50.
        TokenRoute previous = null;
        for (int i = 0; i < 1000; i++) {
            TokenRoute t = route(5, 0, 2);
            counts.add(t, previous);
            previous = t;
        }
        counts.pairDistribution(0, new int[] {0}, 1, prior, 0, out);
        assertThat(out).containsExactly(0, 0, 1, 0);
        // Every table stays a distribution (the temporal one and the per-token ones too).
        counts.temporalDistribution(new int[] {2}, 1, prior, 1, out);
        assertThat(Arrays.stream(out).sum()).isCloseTo(1, within(1e-9));
        assertThat(out[2]).isGreaterThan(0.5);
        assertThat(counts.tokenDistribution(5, false, 1, prior, 1, out)).isTrue();
        assertThat(Arrays.stream(out).sum()).isCloseTo(1, within(1e-9));
        assertThat(out[2]).isGreaterThan(0.5);
    }
}
