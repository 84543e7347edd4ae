package io.moemesh.router.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TokenRoute;
import java.util.List;
import org.junit.jupiter.api.Test;

class RouteStatsTest {

    static TokenRoute token(String key, int[]... perLayer) {
        float[][] w = new float[perLayer.length][];
        for (int l = 0; l < perLayer.length; l++) {
            w[l] = perLayer[l] == null ? null : new float[perLayer[l].length];
        }
        return new TokenRoute(key, -1, perLayer, w);
    }

    @Test
    void counts_loadAndOrderedCoactivationOfEveryRow_transitionsOfFullPathsOnly() {
        RouteTrace trace = new RouteTrace("t", 2, 2, 4, 2, List.of(
                token("0", new int[] {0, 1}, new int[] {2, 3}),
                token("1", new int[] {0, 2}, null),
                token("2", null, new int[] {3, 1})));
        RouteStats s = RouteStats.of(trace);
        assertThat(s.firstLayer()).isEqualTo(2);
        assertThat(s.load()[0]).containsExactly(2, 1, 1, 0);
        assertThat(s.load()[1]).containsExactly(0, 1, 1, 2);
        // ordered: the better-ranked expert first
        assertThat(s.coactivation()[0][0][1]).isEqualTo(1);
        assertThat(s.coactivation()[0][1][0]).isZero();
        assertThat(s.coactivation()[0][0][2]).isEqualTo(1);
        assertThat(s.coactivation()[1][3][1]).isEqualTo(1);
        assertThat(s.coactivation()[1][1][3]).isZero();
        // only token 0 has both layers: 0→2, 0→3, 1→2, 1→3
        assertThat(s.transitions()[0][0]).containsExactly(0, 0, 1, 1);
        assertThat(s.transitions()[0][1]).containsExactly(0, 0, 1, 1);
        assertThat(s.transitions()[0][2]).containsExactly(0, 0, 0, 0);
        assertThat(s.totalLoad(0)).isEqualTo(4);
    }

    @Test
    void counts_refuseAnExpertOutsideTheTrace_namingTokenAndLayer() {
        RouteTrace trace = new RouteTrace("t.csv", 2, 1, 4, 2, List.of(token("7", new int[] {0, 9})));
        assertThatThrownBy(() -> RouteStats.of(trace)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("t.csv: token 7 layer 2 routes to expert 9, the trace has 4");
    }
}
