package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The bound on the child processes the e2e tests run (npm, node): no process, only the rule. */
class BoundedRunTest {

    /**
     * A process that outlasts its bound, with a child holding its output open (as npm's node): the run returns at the
     * bound, long before the 60 s sleep, with what it wrote, and neither process is left alive.
     */
    @Test
    void processOutlastingItsBound_returnsAtTheBound_withItsOutput_andItsWholeTreeKilled() throws Exception {
        Instant t0 = Instant.now();
        BoundedRun run = BoundedRun.of(new ProcessBuilder("sh", "-c", "echo $$; sleep 60 & echo $!; wait"),
                Duration.ofSeconds(3));

        assertThat(Duration.between(t0, Instant.now())).isLessThan(Duration.ofSeconds(30));
        assertThat(run.finished()).isFalse();
        assertThat(run.exit()).isEqualTo(-1);
        List<Long> pids = run.output().lines().map(Long::parseLong).toList();
        assertThat(pids).hasSize(2);
        assertThat(pids).allSatisfy(pid -> assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive))
                .as("pid %d", pid).isEmpty());
    }

    @Test
    void processEndingWithinItsBound_givesItsExitCodeAndOutput() throws Exception {
        BoundedRun run = BoundedRun.of(new ProcessBuilder("sh", "-c", "echo out; echo err >&2; exit 3"),
                Duration.ofSeconds(30));

        assertThat(run.finished()).isTrue();
        assertThat(run.exit()).isEqualTo(3);
        assertThat(run.output().lines()).containsExactly("out", "err");
    }
}
