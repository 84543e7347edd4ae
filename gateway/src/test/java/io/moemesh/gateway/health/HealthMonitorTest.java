package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Readiness as the gRPC mirror publishes it: every check and the application's own state, on change only. */
class HealthMonitorTest {
    private volatile boolean engineAlive = true;
    private final List<Boolean> published = new CopyOnWriteArrayList<>();
    private final StallDetector engine = new StallDetector(new StallDetector.Progress() {
        @Override
        public boolean busy() {
            return false;
        }

        @Override
        public long lastProgressNanos() {
            return 0;
        }

        @Override
        public boolean alive() {
            return engineAlive;
        }
    }, System::nanoTime, Duration.ofSeconds(60), Duration.ofSeconds(180));
    private final HealthMonitor monitor = new HealthMonitor(new ExpertReadiness(null), engine,
            new HttpSelfProbe(Optional::empty, Duration.ofSeconds(1), 1), Duration.ofHours(1), Duration.ofHours(1),
            published::add);

    @AfterEach
    void close() {
        monitor.close();
    }

    @Test
    void readyOnlyWhileTheApplicationAcceptsTraffic_andEveryCheckPasses_publishedOnChange() {
        monitor.start();
        assertThat(published).containsExactly(false);
        monitor.acceptingTraffic(true);
        assertThat(published).containsExactly(false, true);
        monitor.evaluate();
        assertThat(published).as("unchanged: nothing published").containsExactly(false, true);

        engineAlive = false;
        monitor.evaluate();
        assertThat(published).containsExactly(false, true, false);
        engineAlive = true;
        monitor.evaluate();
        assertThat(published).containsExactly(false, true, false, true);

        monitor.acceptingTraffic(false);
        assertThat(published).containsExactly(false, true, false, true, false);
    }

    @Test
    void closed_publishesNotReady_andStaysNotReady() {
        monitor.start();
        monitor.acceptingTraffic(true);
        monitor.close();
        assertThat(published.getLast()).isFalse();
        monitor.acceptingTraffic(true);
        assertThat(published.getLast()).isFalse();
        assertThat(monitor.published()).isFalse();
    }

    @Test
    void expertReadiness_inProcessUp_meshWithoutPlacementDown() {
        assertThat(new ExpertReadiness(null).check().up()).isTrue();
        try (MeshExpertDispatch noPlacement = new MeshExpertDispatch(8, 2, in -> {
            throw new AssertionError("no instance is connected without a placement");
        }, Duration.ofSeconds(10))) {
            Check c = new ExpertReadiness(noPlacement).check();
            assertThat(c.up()).isFalse();
            assertThat(c.reason()).isEqualTo("no placement yet: the gateway does not know where experts live");
        }
    }
}
