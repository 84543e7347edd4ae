package io.moemesh.cli.bench.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.proto.common.v1.DType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class HopBenchmarkGoalTest {

    private static Percentiles p(long p50, long p99) {
        return new Percentiles(p50, p99, p50, 2000);
    }

    @ParameterizedTest(name = "hop p50 {0} p99 {1}, empty RT {2}, memcpy {3} → met {4}")
    @CsvSource({
            // floor = 100 + 3 × 10 = 130 ns, goal = 1.5 × 130 = 195
            "195, 585, 100, 10, true",  // p50 at the goal, p99 at 3 × p50
            "196, 300, 100, 10, false", // p50 over 1.5 × the floor
            "150, 451, 100, 10, false", // p50 fine, tail over 3 × p50
            "130, 130, 100, 10, true",  // at the floor
    })
    void goalMet_p50WithinOneAndAHalfFloors_andP99WithinThreeP50s(long hop50, long hop99, long empty, long memcpy,
                                                                  boolean met) {
        HopBenchmark.Row row = new HopBenchmark.Row(1024, 32, DType.DTYPE_F32, 128 << 10, p(hop50, hop99),
                p(empty, empty), p(memcpy, memcpy), 4);
        assertThat(row.floor()).isEqualTo(empty + 3 * memcpy);
        assertThat(row.goal()).isEqualTo(Math.round(1.5 * (empty + 3 * memcpy)));
        assertThat(row.goalMet()).isEqualTo(met);
    }
}
