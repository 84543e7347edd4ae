package io.moemesh.cli.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.io.UncheckedIOException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ProcessCpuTest {

    @Test
    void seconds_addUserAndSystemTicks_atHundredPerSecond_evenWhenTheNameHoldsSpacesAndParens() {
        // fields 14 and 15 (utime 250, stime 37) after a comm with ") (" inside it
        String stat = "4242 (odd) (name x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 31 0 123 456 789";

        assertThat(ProcessCpu.comm(stat)).isEqualTo("odd) (name x");
        assertThat(ProcessCpu.seconds(stat)).isEqualTo(2.87);
    }

    @Test
    void seconds_refuseALineThatIsNotAStatLine() {
        assertThatThrownBy(() -> ProcessCpu.seconds("no parens here")).isInstanceOf(UncheckedIOException.class)
                .hasMessageContaining("not a /proc stat line");
        assertThatThrownBy(() -> ProcessCpu.seconds("1 (java) S 1 2")).isInstanceOf(UncheckedIOException.class)
                .hasMessageContaining("fields after the name");
    }

    @ParameterizedTest
    @CsvSource({
            "C2 CompilerThre, C2",
            "C1 CompilerThre, C1",
            "GC Thread#0, GC",
            "G1 Conc#0, GC",
            "VM Thread, GC",
            "main, MAIN",
            "java, MAIN",
            "kernel-warm-up, OTHER",
            "grpc-default-ex, OTHER",
    })
    void kind_followsHotSpotsThreadNames(String comm, ProcessCpu.Kind kind) {
        assertThat(ProcessCpu.kind(comm)).isEqualTo(kind);
    }

    @Test
    void of_thisJvm_hasATotalThatCoversEveryKind() {
        assumeThat(Files.isDirectory(Path.of("/proc/self/task"))).as("Linux /proc").isTrue();
        // enough work that the counters (10 ms ticks) move
        long x = 0;
        for (int i = 0; i < 50_000_000; i++) {
            x += Long.numberOfTrailingZeros(i ^ x);
        }
        assertThat(x).isNotZero();

        ProcessCpu cpu = ProcessCpu.of(ProcessHandle.current().pid()).orElseThrow();

        assertThat(cpu.total()).isPositive();
        assertThat(cpu.c2() + cpu.c1() + cpu.gc() + cpu.main() + cpu.other()).isCloseTo(cpu.total(),
                org.assertj.core.data.Offset.offset(1e-9));
        assertThat(cpu.other()).isGreaterThanOrEqualTo(0);
    }

    @Test
    void of_aProcessThatDoesNotExist_isEmpty() {
        assertThat(ProcessCpu.of(Long.MAX_VALUE)).isEmpty();
    }

    @Test
    void plus_addsKindByKind() {
        ProcessCpu a = new ProcessCpu(10, 1, 2, 3, 3, 1);
        ProcessCpu b = new ProcessCpu(5, 1, 1, 1, 1, 1);

        assertThat(a.plus(b)).isEqualTo(new ProcessCpu(15, 2, 3, 4, 4, 2));
    }
}
