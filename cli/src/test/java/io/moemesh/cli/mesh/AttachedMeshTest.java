package io.moemesh.cli.mesh;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** {@link RunningMesh#attach}: a mesh another process started, on the launcher's fake service jars. */
class AttachedMeshTest extends MeshLauncherFixture {
    /**
     * A mesh another process started ({@code bench startup} runs the launcher script) and this one attached to: its
     * services run in sessions of their own, so only the exit hook stops them on Ctrl-C; closing it removes the hook.
     */
    @Test
    void attachedMesh_stopOnJvmExit_hookStopsItsServices_andCloseRemovesTheHook() {
        MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)).withoutRouter(), new PrintWriter(log, true), false);
        RunningMesh attached = RunningMesh.attach(state).stopOnJvmExit();
        MeshState s = attached.state();
        Thread hook = attached.exitHook();
        assertThat(Runtime.getRuntime().removeShutdownHook(hook)).as("registered").isTrue();

        hook.run(); // what the JVM runs on Ctrl-C

        assertThat(s.services()).allSatisfy(svc -> assertThat(svc.process()).as(svc.name()).isEmpty());
        assertThat(MeshState.file(state)).doesNotExist();

        MeshLauncher.up(spec(1, 1, Duration.ofSeconds(90)).withoutRouter(), new PrintWriter(log, true), false);
        RunningMesh again = RunningMesh.attach(state).stopOnJvmExit();
        again.close();
        assertThat(Runtime.getRuntime().removeShutdownHook(again.exitHook())).as("removed by close").isFalse();
        assertThat(MeshState.file(state)).doesNotExist();
    }
}
