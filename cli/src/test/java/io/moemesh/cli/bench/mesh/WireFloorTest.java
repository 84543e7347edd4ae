package io.moemesh.cli.bench.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.proto.common.v1.DType;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

class WireFloorTest {

    @ParameterizedTest
    @EnumSource(WireFloor.Socket.class)
    void socketRoundTrip_movesThePayloadBothWays_everyIterationTimed(WireFloor.Socket socket) {
        Percentiles p = WireFloor.socketRoundTrip(socket, 200_000, 2, 20);
        assertThat(p.n()).isEqualTo(20);
        assertThat(p.min()).isPositive();
        assertThat(p.p99()).isGreaterThanOrEqualTo(p.p50());
    }

    @Test
    void sealRecords_timesEveryIteration() {
        Percentiles p = WireFloor.sealRecords(40_000, 2, 10); // 3 records, the last one short
        assertThat(p.n()).isEqualTo(10);
        assertThat(p.min()).isPositive();
    }

    private static HopBenchmark.Row row(long emptyRtNanos) {
        Percentiles hop = new Percentiles(900_000, 1_000_000, 800_000, 10);
        Percentiles empty = new Percentiles(emptyRtNanos, emptyRtNanos, emptyRtNanos, 10);
        Percentiles memcpy = new Percentiles(5_000, 5_000, 5_000, 10);
        return new HopBenchmark.Row(1024, 32, DType.DTYPE_F32, 128 << 10, hop, empty, memcpy, 4);
    }

    private static String[] cells(String table, String transport) {
        String line = Arrays.stream(table.split("\n")).filter(l -> l.startsWith("| " + transport + " |")).findFirst()
                .orElseThrow();
        return Arrays.stream(line.split("\\|")).map(String::strip).skip(1).toArray(String[]::new);
    }

    @Test
    void print_boundIsTheEmptyRoundTripPlusKernelAndSeal_perTransport() {
        StringWriter text = new StringWriter();
        WireFloor.print(new PrintWriter(text), List.of(new WireFloor.Measured(row(100_000), "plaintext"),
                new WireFloor.Measured(row(100_000), "mtls"), new WireFloor.Measured(row(100_000), "unix")), 2, 20);
        String table = text.toString();
        String[] plain = cells(table, "plaintext");
        String[] tls = cells(table, "mtls");
        String[] arena = cells(table, "unix");
        // columns: transport, hidden, tokens, wire, KiB, hop p50, empty RT, kernel, seal, bound, goal, bound ÷ goal
        assertThat(plain[8]).isEqualTo("—");
        assertThat(Double.parseDouble(plain[9])).isEqualTo(100.0 + Double.parseDouble(plain[7]), within());
        assertThat(Double.parseDouble(tls[8])).isPositive();
        assertThat(Double.parseDouble(tls[9])).isEqualTo(
                100.0 + Double.parseDouble(tls[7]) + Double.parseDouble(tls[8]), within());
        assertThat(arena[7]).isEqualTo("—");
        assertThat(arena[9]).isEqualTo("100.0");
        // goal = 1.5 × (100 + 3 × 5) µs
        assertThat(arena[10]).isEqualTo("172.5");
        assertThat(arena[11]).isEqualTo("0.58");
    }

    private static org.assertj.core.data.Offset<Double> within() {
        return org.assertj.core.data.Offset.offset(0.25); // cells are rounded to 0.1 µs
    }
}
