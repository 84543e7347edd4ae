package io.moemesh.cli.mesh;

import io.moemesh.model.golden.TestModels;
import java.io.IOException;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

/** What the launcher tests share: a fake home of service jars, a state directory, the launcher's log. */
abstract class MeshLauncherFixture {
    @TempDir
    Path tmp;

    MeshHome home;
    Path state;
    final StringWriter log = new StringWriter();

    @BeforeEach
    void fakeHome() throws IOException {
        home = FakeHome.create(tmp.resolve("home"));
        state = tmp.resolve("state");
    }

    @AfterEach
    void stopLeftovers() {
        // Waits for no launch: one a failed test left starting fails this naming the lock, instead of holding the
        // suite for moemesh down's 600 s.
        MeshLauncher.down(state, Duration.ofSeconds(5));
    }

    MeshSpec spec(int experts, int replicas, Duration timeout, String... jvmOptions) {
        return new MeshSpec(TestModels.dir(TestModels.MIXTRAL_BF16), experts, replicas, state, "256m", timeout, home,
                List.of(jvmOptions));
    }
}
