package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import java.io.IOException;
import java.io.UncheckedIOException;
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

    /**
     * A probe that throws before its request is sent (here its target; the client's selector when the process is
     * out of file descriptors) is a failed probe: the monitor thread lives on, the next probes run, and readiness
     * follows them instead of freezing at its last value.
     */
    @Test
    void probeThatThrows_countsAsFailed_andTheMonitorKeepsProbingAndPublishing() {
        HttpSelfProbe throwing = new HttpSelfProbe(() -> {
            throw new UncheckedIOException(new IOException("Too many open files"));
        }, Duration.ofSeconds(1), 2);
        List<Boolean> seen = new CopyOnWriteArrayList<>();
        try (HealthMonitor m = new HealthMonitor(new ExpertReadiness(null), engine, throwing, Duration.ofMillis(5),
                Duration.ofMillis(5), seen::add)) {
            m.start();
            m.acceptingTraffic(true);
            await().atMost(Duration.ofSeconds(30)).until(() -> throwing.failuresTotal() >= 3);
            await().atMost(Duration.ofSeconds(30)).until(() -> !seen.isEmpty() && !seen.getLast());
            assertThat(throwing.check().reason()).contains("Too many open files");
        }
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
