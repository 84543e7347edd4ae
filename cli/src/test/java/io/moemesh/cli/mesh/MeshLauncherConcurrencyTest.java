package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.moemesh.cli.CliRun;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * What happens on one state directory when a launch meets another launch, a {@code down}, or a Ctrl-C: on fake
 * service jars, real detached JVMs.
 */
class MeshLauncherConcurrencyTest extends MeshLauncherFixture {
    /**
     * Two launches on one state directory at once: the one that takes its lock starts the mesh; the other fails at
     * once naming the directory, starting no JVM and touching neither the CA nor mesh.json of the first.
     */
    @Test
    void twoUpsAtOnceOnOneStateDir_oneFailsFastNamingTheLock_startingNothing_theOtherComesUp() throws Exception {
        CountDownLatch go = new CountDownLatch(1);
        ExecutorService two = Executors.newFixedThreadPool(2);
        List<RunningMesh> up = new CopyOnWriteArrayList<>();
        List<Throwable> failed = new CopyOnWriteArrayList<>();
        try {
            List<Future<?>> runs = new java.util.ArrayList<>();
            for (int i = 0; i < 2; i++) {
                runs.add(two.submit(() -> {
                    go.await();
                    try {
                        up.add(MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)).withoutRouter(), new PrintWriter(log, true),
                                true));
                    } catch (RuntimeException e) {
                        failed.add(e);
                    }
                    return null;
                }));
            }
            go.countDown();
            for (Future<?> r : runs) {
                r.get(3, TimeUnit.MINUTES);
            }
            assertThat(failed).singleElement().isInstanceOf(IllegalArgumentException.class).asString()
                    .contains("another moemesh up is starting a mesh in " + state)
                    .contains("moemesh down --state-dir " + state);
            assertThat(up).hasSize(1);
            MeshState recorded = MeshState.read(state).orElseThrow();
            assertThat(recorded.services()).allSatisfy(svc -> assertThat(svc.process()).as(svc.name()).isPresent());
            // every service JVM of this state directory is one the winner recorded: the loser left none behind
            java.util.Set<Long> pids = new java.util.HashSet<>(recorded.services().stream().map(MeshState.Service::pid)
                    .toList());
            assertThat(ProcessHandle.allProcesses()
                    .filter(p -> p.info().commandLine().orElse("").contains(state.resolve("native-cache").toString()))
                    .map(ProcessHandle::pid).toList()).containsExactlyInAnyOrderElementsOf(pids);
            assertThat(ServiceProcess.serving("127.0.0.1", recorded.gateway().grpcPort())).isTrue();
        } finally {
            up.forEach(RunningMesh::close);
            two.shutdownNow();
        }
    }

    /**
     * A cleanup (a CI trap) running {@code down} while {@code up} is still starting the mesh: down waits for the
     * launch to end, then stops every service it started; the launch itself succeeds and says that a down is
     * stopping its mesh, instead of failing on services killed under it (or coming up after a down that found no
     * mesh.json yet).
     */
    @Test
    void down_whileAnUpIsStarting_waitsForTheLaunch_thenStopsEverythingItStarted() throws Exception {
        ExecutorService one = Executors.newSingleThreadExecutor();
        RunningMesh mesh = null;
        try {
            Future<RunningMesh> up = one.submit(() -> MeshLauncher.up(spec(2, 1, Duration.ofSeconds(90)),
                    new PrintWriter(log, true), true));
            await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(5))
                    .until(() -> LaunchLock.held(state) || up.isDone());
            StringWriter downLog = new StringWriter();

            List<String> report = MeshLauncher.down(state, Duration.ofSeconds(20), Duration.ofMinutes(2),
                    new PrintWriter(downLog, true));

            mesh = up.get(1, TimeUnit.MINUTES);
            MeshState started = mesh.state();
            assertThat(started.services()).extracting(MeshState.Service::name)
                    .containsExactly("expert-0", "expert-1", "router", "gateway");
            assertThat(report).containsExactlyElementsOf(started.services().stream()
                    .map(s -> "stopped " + s.name() + " (pid " + s.pid() + ")").toList());
            assertThat(started.services()).allSatisfy(s -> assertThat(s.process()).as(s.name()).isEmpty());
            assertThat(MeshState.file(state)).doesNotExist();
            assertThat(downLog.toString()).contains("a moemesh up is starting a mesh in " + state)
                    .contains(state.resolve(".lock").toString()).contains("waiting up to 120 s");
            long self = ProcessHandle.current().pid();
            assertThat(mesh.stopAskedBy()).contains(self);
            assertThat(log.toString()).contains("moemesh down (pid " + self + ") asked to stop this mesh while it was "
                    + "starting: it stops it now");
            assertThat(state.resolve(LaunchLock.DOWN_WAITING)).doesNotExist();
        } finally {
            if (mesh != null) {
                mesh.close();
            }
            one.shutdownNow();
        }
    }

    /**
     * A launch that outlasts {@code down --launch-wait}: down exits 2 naming the lock file and what to do, and stops
     * nothing; the launch goes on (here until its own timeout, when it stops what it started).
     */
    @Test
    void downCommand_whileAnUpOutlastsItsLaunchWait_exits2NamingTheLock_andStopsNothing() throws Exception {
        ExecutorService one = Executors.newSingleThreadExecutor();
        try {
            Future<RunningMesh> up = one.submit(() -> MeshLauncher.up(spec(1, 1, Duration.ofSeconds(15),
                    "-Dfake.hang=expert-0").withoutRouter(), new PrintWriter(log, true), true));
            await().atMost(Duration.ofSeconds(30)).until(() -> MeshState.read(state)
                    .map(s -> !s.experts().isEmpty() && s.experts().getFirst().process().isPresent()).orElse(false));

            CliRun down = CliRun.of("down", "--state-dir", state.toString(), "--launch-wait", "1");

            assertThat(down.exitCode()).as(down.err()).isEqualTo(2);
            assertThat(down.err()).contains("a moemesh up is still starting a mesh in " + state)
                    .contains(state.resolve(".lock").toString()).contains("nothing was stopped")
                    .contains("--launch-wait");
            assertThat(MeshState.read(state).orElseThrow().experts().getFirst().process()).as("expert-0").isPresent();
            assertThatThrownBy(() -> up.get(1, TimeUnit.MINUTES)).isInstanceOf(ExecutionException.class)
                    .hasCauseInstanceOf(MeshException.class)
                    .hasMessageContaining("expert-0 did not report SERVING");
        } finally {
            one.shutdownNow();
        }
    }

    /**
     * A cleanup in code (a test's @AfterEach, a shutdown hook) while a launch is starting a mesh: it refuses at once
     * naming the lock and stops nothing, long before moemesh down's 600 s launch wait (a hook blocking that long is
     * SIGKILLed, cleaning nothing); the launch goes on (here until its own timeout, when it stops what it started).
     */
    @Test
    void downInCode_whileALaunchIsStarting_refusesAtOnceNamingTheLock_andStopsNothing() throws Exception {
        ExecutorService one = Executors.newSingleThreadExecutor();
        try {
            Future<RunningMesh> up = one.submit(() -> MeshLauncher.up(spec(1, 1, Duration.ofSeconds(15),
                    "-Dfake.hang=expert-0").withoutRouter(), new PrintWriter(log, true), true));
            await().atMost(Duration.ofSeconds(30)).until(() -> MeshState.read(state)
                    .map(s -> !s.experts().isEmpty() && s.experts().getFirst().process().isPresent()).orElse(false));

            assertThatThrownBy(() -> MeshLauncher.down(state, Duration.ofSeconds(5)))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("a moemesh up is still starting a mesh in " + state)
                    .hasMessageContaining(state.resolve(".lock").toString())
                    .hasMessageContaining("nothing was stopped");

            assertThat(up.isDone()).as("down returned before the launch's 15 s timeout").isFalse();
            assertThat(MeshState.read(state).orElseThrow().experts().getFirst().process()).as("expert-0").isPresent();
            // no marker: the launch must not say that a down stops its mesh
            assertThat(state.resolve(LaunchLock.DOWN_WAITING)).doesNotExist();
            assertThatThrownBy(() -> up.get(1, TimeUnit.MINUTES)).isInstanceOf(ExecutionException.class)
                    .hasCauseInstanceOf(MeshException.class)
                    .hasMessageContaining("expert-0 did not report SERVING");
        } finally {
            one.shutdownNow();
        }
    }

    /**
     * {@code moemesh up} whose mesh a {@code down} run during the launch stops: exit 4 and nothing on stdout, so
     * {@code moemesh up && moemesh generate ...} does not go on against a mesh being torn down.
     */
    @Test
    void upCommand_whileADownWaitsForItsLaunch_exits4_printingNoEndpoints() throws Exception {
        String previousHome = System.setProperty("moemesh.home", home.root().toString());
        ExecutorService one = Executors.newSingleThreadExecutor();
        try {
            Future<CliRun> up = one.submit(() -> CliRun.of("up", "--model",
                    TestModels.dir(TestModels.MIXTRAL_BF16).toString(), "--experts", "2", "--no-kvcache",
                    "--state-dir", state.toString(), "--heap", "256m", "--timeout", "90"));
            await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(5))
                    .until(() -> LaunchLock.held(state) || up.isDone());

            List<String> report = MeshLauncher.down(state, Duration.ofSeconds(20), Duration.ofMinutes(2),
                    new PrintWriter(new StringWriter(), true));

            CliRun run = up.get(1, TimeUnit.MINUTES);
            assertThat(run.exitCode()).as(run.err()).isEqualTo(UpCommand.STOPPED_BY_DOWN).isEqualTo(4);
            assertThat(run.out()).isEmpty();
            assertThat(run.err()).contains("asked to stop this mesh while it was starting")
                    .contains("the mesh is being stopped, no endpoints printed").doesNotContain("stop it with");
            assertThat(report).isNotEmpty().allMatch(l -> l.startsWith("stopped "))
                    .anyMatch(l -> l.startsWith("stopped gateway (pid "));
            assertThat(MeshState.file(state)).doesNotExist();
        } finally {
            if (previousHome == null) {
                System.clearProperty("moemesh.home");
            } else {
                System.setProperty("moemesh.home", previousHome);
            }
            one.shutdownNow();
        }
    }

    /**
     * A Ctrl-C after the last service reports SERVING, as the launch is about to start the supervisor: the abort
     * hook stops what the launch started (a supervisor it already started included), and from then on the launch
     * starts no supervisor, which would restart every service the hook stops, left running and unrecorded.
     */
    @Test
    void abort_stopsASupervisorStartedBeforeIt_andTheLaunchStartsNoneAfterIt() throws IOException {
        MeshSpec spec = new MeshSpec(TestModels.dir(TestModels.MIXTRAL_BF16), 1, 1, state, "256m",
                Duration.ofSeconds(90), home, List.of(), MeshSpec.RestartPolicy.ALWAYS);
        RunningMesh mesh = RunningMesh.launching(state, new MeshState(spec.model().toString(), 1, 1,
                state.resolve("placement.json").toString(), List.of(), null), ModelConfigReader.read(spec.model()));
        PrintWriter out = new PrintWriter(log, true);
        MeshLauncher.startSupervisor(mesh, spec, MeshHome.javaBinary(), out);
        MeshState.Service supervisor = mesh.state().supervisor();
        assertThat(supervisor.process()).isPresent();

        mesh.stopQuietly(); // the launch's abort hook, as a Ctrl-C runs it

        assertThat(supervisor.process()).isEmpty();
        assertThat(MeshState.file(state)).doesNotExist();
        // the launch's own thread goes on to start the supervisor
        assertThatThrownBy(() -> MeshLauncher.startSupervisor(mesh, spec, MeshHome.javaBinary(), out))
                .isInstanceOf(MeshException.class)
                .hasMessageContaining("moemesh up was interrupted while starting the mesh in " + state)
                .hasMessageContaining("not starting supervisor");
        assertThat(Files.readString(Path.of(supervisor.logFile())).lines()
                .filter(l -> l.startsWith("=== moemesh: starting supervisor"))).hasSize(1);
        assertThat(MeshState.file(state)).doesNotExist();
    }
}
