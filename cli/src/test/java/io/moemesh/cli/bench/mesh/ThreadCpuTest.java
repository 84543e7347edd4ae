package io.moemesh.cli.bench.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ThreadCpuTest {
    /** A real /proc/<pid>/task/<tid>/stat line's shape: utime 250 and stime 50 ticks (fields 14, 15). */
    private static final String STAT = "4242 (grpc-uds-1-3 (x)) S 1 4242 4242 0 -1 4194624 900 0 0 0 250 50 0 0 20 0 "
            + "31 0 1000 8000000 20000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    @Test
    void statLine_givesItsName_andUserPlusSystemTicks_evenWithParensInTheName() {
        assertThat(ThreadCpu.comm(STAT)).isEqualTo("grpc-uds-1-3 (x)");
        assertThat(ThreadCpu.ticks(STAT)).isEqualTo(300);
    }

    @Test
    void malformedStatLine_isRefused_sayingSo() {
        assertThatThrownBy(() -> ThreadCpu.comm("no name here")).hasMessageContaining("not a /proc stat line");
        assertThatThrownBy(() -> ThreadCpu.ticks("1 (x) S 1 2")).hasMessageContaining("fields after the name");
    }

    @ParameterizedTest(name = "{0} is kind {1}")
    @CsvSource({"expert-compute-1, expert-compute-#", "expert-compute-2, expert-compute-#", "moemesh-engine, moemesh-engine",
        "C2 CompilerThre, C# CompilerThre", "GC Thread#0, GC Thread##"})
    void threadKind_isItsName_withDigitsReplaced(String comm, String kind) {
        assertThat(ThreadCpu.kind(comm)).isEqualTo(kind);
    }

    @Test
    void statusField_isReadByName_zeroWhenAbsent() {
        String status = "Name:\tjava\nvoluntary_ctxt_switches:\t1234\nnonvoluntary_ctxt_switches:\t7\n";
        assertThat(ThreadCpu.field(status, "voluntary_ctxt_switches:")).isEqualTo(1234);
        assertThat(ThreadCpu.field(status, "nonvoluntary_ctxt_switches:")).isEqualTo(7);
        assertThat(ThreadCpu.field(status, "missing:")).isZero();
    }

    @Test
    void difference_addsUpPerServiceAndKind_countingNewThreadsWhole() {
        ThreadCpu before = new ThreadCpu(Map.of(
                "gw/1", new ThreadCpu.Thread("gw", "worker-#", 100, 10),
                "gw/2", new ThreadCpu.Thread("gw", "worker-#", 50, 5)));
        ThreadCpu after = new ThreadCpu(Map.of(
                "gw/1", new ThreadCpu.Thread("gw", "worker-#", 150, 14),
                "gw/2", new ThreadCpu.Thread("gw", "worker-#", 60, 6),
                "gw/3", new ThreadCpu.Thread("gw", "engine", 30, 2),
                "ex/9", new ThreadCpu.Thread("ex", "worker-#", 0, 0)));
        List<ThreadCpu.Use> uses = after.minus(before);
        assertThat(uses).containsExactly(
                new ThreadCpu.Use("ex", "worker-#", 0, 0),
                new ThreadCpu.Use("gw", "engine", 0.30, 2),
                new ThreadCpu.Use("gw", "worker-#", 0.60, 5));
        assertThat(ThreadCpu.total(uses)).isEqualTo(0.90, org.assertj.core.api.Assertions.within(1e-9));
    }

    /** On Linux the JVM running this test has threads, and its CPU only grows. */
    @Test
    void snapshotOfThisProcess_seesItsThreads_onLinux() {
        assumeThat(Files.isDirectory(Path.of("/proc/self/task"))).isTrue();
        Map<String, Long> me = Map.of("me", ProcessHandle.current().pid());
        ThreadCpu before = ThreadCpu.of(me);
        assertThat(before.threads()).isNotEmpty();
        assertThat(before.threads().values()).allSatisfy(t -> assertThat(t.service()).isEqualTo("me"));
        assertThat(ThreadCpu.of(me).minus(before)).allSatisfy(u -> assertThat(u.cpuSeconds()).isNotNegative());
    }

    @Test
    void processThatDoesNotExist_contributesNothing() {
        assertThat(ThreadCpu.of(Map.of("gone", Long.MAX_VALUE)).threads()).isEmpty();
    }
}
