package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;

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
        // A zombie is dead: one a non-reaping PID 1 (some containers) adopted stays, and isAlive counts it alive.
        assertThat(pids).allSatisfy(pid -> assertThat(ProcessHandle.of(pid).filter(ProcessHandle::isAlive)
                .filter(h -> !BoundedRun.zombie(pid))).as("pid %d", pid).isEmpty());
    }

    /**
     * The kill of a tree ends each child while its parent can still reap it: the shell, in {@code wait}, reaps the
     * killed sleep before the shell itself is killed. Killed together, the shell died first at times and the sleep
     * went to PID 1, which in some containers reaps nothing: a zombie, alive to {@link ProcessHandle#isAlive}. This
     * JVM plays that PID 1 here: as the child subreaper of what it starts (Linux), the orphans come to it, and it
     * reaps none but its own children.
     */
    @Test
    @EnabledOnOs(OS.LINUX)
    void killedTree_eachChildReapedByItsParent_noneLeftAZombieOfANonReapingAncestor() throws Throwable {
        List<Long> pids;
        childSubreaper(true);
        try {
            pids = BoundedRun.of(new ProcessBuilder("sh", "-c", "echo $$; sleep 60 & echo $!; wait"),
                    Duration.ofSeconds(1)).output().lines().map(Long::parseLong).toList();
        } finally {
            childSubreaper(false);
        }
        assertThat(pids).hasSize(2);
        // gone, not even a zombie (which ProcessHandle.of still finds)
        assertThat(ProcessHandle.of(pids.get(1))).as("the sleep, pid %d", pids.get(1)).isEmpty();
        assertThat(ProcessHandle.of(pids.get(0))).as("the shell, pid %d", pids.get(0)).isEmpty();
    }

    /** prctl(PR_SET_CHILD_SUBREAPER, on) on this JVM. */
    private static void childSubreaper(boolean on) throws Throwable {
        Linker linker = Linker.nativeLinker();
        MethodHandle prctl = linker.downcallHandle(linker.defaultLookup().find("prctl").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG),
                Linker.Option.firstVariadicArg(1));
        int prSetChildSubreaper = 36;
        assertThat((int) prctl.invokeExact(prSetChildSubreaper, on ? 1L : 0L)).as("prctl").isZero();
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
