package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The self-probe against real sockets: a listener that answers, a closed port, one that accepts and never answers
 * (with the load its clients put on it, or none); and a probe that cannot even be sent (no client).
 */
class HttpSelfProbeTest {
    private HttpServer answering;
    private final AtomicReference<Optional<URI>> target = new AtomicReference<>(Optional.empty());

    @BeforeEach
    void start() throws IOException {
        answering = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        answering.createContext("/v1/models", exchange -> {
            // Without an API key the real gateway answers 401: an answer all the same.
            exchange.sendResponseHeaders(401, -1);
            exchange.close();
        });
        answering.start();
    }

    @AfterEach
    void stop() {
        answering.stop(0);
    }

    private URI answeringUri() {
        return URI.create("http://127.0.0.1:" + answering.getAddress().getPort() + "/v1/models");
    }

    private static int closedPort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /**
     * Probes until {@code n} probes failed in total, and not once more: a probe is started only while fewer have
     * failed (one at a time), so none is in flight when this returns and the checks that follow see exactly n.
     */
    private static void failures(HttpSelfProbe probe, long n) {
        await().until(() -> {
            if (probe.failuresTotal() >= n) {
                return true;
            }
            probe.probe();
            return false;
        });
    }

    @Test
    void anyAnswer_up_evenA401() {
        HttpSelfProbe probe = new HttpSelfProbe(() -> Optional.of(answeringUri()), Duration.ofSeconds(5), 1);
        probe.probe();
        await().until(() -> probe.readiness().details().get("last").equals("HTTP 401"));
        assertThat(probe.readiness().up()).isTrue();
        assertThat(probe.failuresTotal()).isZero();
    }

    @Test
    void closedPort_downAfterTheFailuresInARow_upAgainAfterOneAnswer() throws IOException {
        target.set(Optional.of(URI.create("http://127.0.0.1:" + closedPort() + "/v1/models")));
        HttpSelfProbe probe = new HttpSelfProbe(target::get, Duration.ofSeconds(5), 2);
        failures(probe, 1);
        assertThat(probe.readiness().up()).as("one failure is not enough").isTrue();
        failures(probe, 2);
        Check down = probe.readiness();
        assertThat(down.up()).isFalse();
        assertThat(down.reason()).startsWith("the public HTTP listener did not answer 2 probes in a row (last: Connect");

        target.set(Optional.of(answeringUri()));
        await().until(() -> {
            probe.probe();
            return probe.readiness().up();
        });
        assertThat(probe.readiness().details()).containsEntry("consecutiveFailures", 0);
    }

    @Test
    void listenerThatAcceptsButNeverAnswers_failsOnTheTimeout() throws IOException {
        // The kernel completes the TCP handshake for the backlog; nothing ever reads the request (a dead poller).
        try (ServerSocket silent = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
            HttpSelfProbe probe = new HttpSelfProbe(
                    () -> Optional.of(URI.create("http://127.0.0.1:" + silent.getLocalPort() + "/v1/models")),
                    Duration.ofMillis(300), 1);
            failures(probe, 1);
            assertThat(probe.readiness().up()).isFalse();
            assertThat(probe.readiness().reason()).contains("Timeout");
            assertThat(probe.liveness().up()).as("nothing explains it: no load known").isFalse();
        }
    }

    private static Optional<URI> uri(ServerSocket s) {
        return Optional.of(URI.create("http://127.0.0.1:" + s.getLocalPort() + "/v1/models"));
    }

    /**
     * A listener that accepts and never answers while its load says every worker is busy and it keeps completing
     * work: its clients are in the way, it is not dead. Readiness fails, liveness does not, and one answer clears
     * both.
     */
    @Test
    void silentListener_fullOfClientsAndWorking_failsReadinessNotLiveness() throws IOException {
        try (ServerSocket silent = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
            target.set(uri(silent));
            AtomicLong completed = new AtomicLong();
            HttpSelfProbe probe = new HttpSelfProbe(target::get, Duration.ofMillis(200), 2,
                    () -> new ListenerLoad(2, 2, 5, 8192, completed.incrementAndGet()), Duration.ofMinutes(2));
            failures(probe, 3);
            assertThat(probe.readiness().up()).isFalse();
            Check live = probe.liveness();
            assertThat(live.up()).isTrue();
            assertThat(live.reason()).contains("its clients keep it full");
            assertThat(live.details()).containsEntry("consecutiveFailures", 3).containsEntry("unexplainedFailures", 0)
                    .containsEntry("saturated", "workers 2/2 busy, connections 5/8192");

            target.set(Optional.of(answeringUri()));
            await().until(() -> {
                probe.probe();
                return probe.readiness().up();
            });
            assertThat(probe.liveness().details()).containsEntry("unexplainedFailures", 0)
                    .doesNotContainKey("saturated");
        }
    }

    /**
     * Full (every connection taken) but completing no task since the first look: a listener stuck for good, or a
     * dead poller whose leaked connections fill it, is not excused past the progress window; liveness fails.
     */
    @Test
    void silentListener_fullButCompletingNothing_failsLivenessPastTheProgressWindow() throws IOException {
        try (ServerSocket silent = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
            HttpSelfProbe probe = new HttpSelfProbe(() -> uri(silent), Duration.ofMillis(200), 2,
                    () -> new ListenerLoad(0, 200, 8192, 8192, 7), Duration.ofMillis(1));
            failures(probe, 3);
            Check live = probe.liveness();
            assertThat(live.up()).isFalse();
            assertThat(live.reason()).startsWith("the public HTTP listener did not answer 2 probes that its load "
                    + "does not explain");
            assertThat(probe.readiness().up()).isFalse();
        }
    }

    @Test
    void silentListener_loadThatCannotBeRead_countsForLiveness() throws IOException {
        try (ServerSocket silent = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
            HttpSelfProbe probe = new HttpSelfProbe(() -> uri(silent), Duration.ofMillis(200), 1, () -> {
                throw new IllegalStateException("the web server is stopping");
            }, Duration.ofMinutes(2));
            failures(probe, 1);
            assertThat(probe.liveness().up()).isFalse();
        }
    }

    @Test
    void clientThatCannotBeMade_isAFailedProbe_andTheNextProbeStillRuns() {
        AtomicBoolean outOfDescriptors = new AtomicBoolean(true);
        HttpSelfProbe probe = new HttpSelfProbe(() -> Optional.of(answeringUri()), Duration.ofSeconds(5), 1, () -> {
            if (outOfDescriptors.get()) {
                // What HttpClient.newBuilder().build() throws when its selector cannot be opened (EMFILE).
                throw new UncheckedIOException(new IOException("Too many open files"));
            }
            return HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        });
        probe.probe();
        assertThat(probe.failuresTotal()).isOne();
        assertThat(probe.readiness().up()).isFalse();
        assertThat(probe.readiness().reason()).contains("IOException: Too many open files");

        outOfDescriptors.set(false);
        probe.probe();
        await().until(() -> probe.readiness().up());
        assertThat(probe.readiness().details()).containsEntry("last", "HTTP 401");
    }

    @Test
    void targetNotKnownYet_noProbe_up() {
        HttpSelfProbe probe = new HttpSelfProbe(Optional::empty, Duration.ofSeconds(1), 1);
        probe.probe();
        assertThat(probe.failuresTotal()).isZero();
        assertThat(probe.readiness().up()).isTrue();
        assertThat(probe.readiness().details()).containsEntry("last", "no probe yet");
    }

    /** A refused connection is no wait behind clients: it counts for liveness however full the listener is. */
    @Test
    void refusedConnection_underSaturation_countsForLiveness() throws IOException {
        int closed = closedPort();
        HttpSelfProbe probe = new HttpSelfProbe(() -> Optional.of(URI.create("http://127.0.0.1:" + closed + "/")),
                Duration.ofSeconds(5), 2, () -> new ListenerLoad(2, 2, 8192, 8192, System.nanoTime()),
                Duration.ofMinutes(2));
        failures(probe, 2);
        assertThat(probe.liveness().up()).isFalse();
        assertThat(probe.liveness().details()).containsEntry("unexplainedFailures", 2).doesNotContainKey("saturated");
    }

    /** Idle keep-alive connections are closed only at the keep-alive timeout: the window covers the longer one. */
    @Test
    void progressWindow_isTwiceTheLongerOfConnectionAndKeepAliveTimeouts() {
        assertThat(HttpSelfProbe.progressWindow(Duration.ofSeconds(20), Duration.ofMinutes(5)))
                .isEqualTo(Duration.ofMinutes(10));
        assertThat(HttpSelfProbe.progressWindow(Duration.ofSeconds(60), Duration.ofSeconds(5)))
                .isEqualTo(Duration.ofMinutes(2));
        assertThat(HttpSelfProbe.progressWindow(Duration.ofSeconds(30), null)).isEqualTo(Duration.ofMinutes(1));
    }

    /**
     * Idle connections never closed (a timeout of -1): a full listener completes nothing while merely full, so a
     * timed-out probe under saturation stays excused however long nothing completes.
     */
    @Test
    void progressWindow_idleConnectionsNeverClosed_saturationAloneNeverFailsLiveness() throws IOException {
        assertThat(HttpSelfProbe.progressWindow(Duration.ofMillis(-1), null)).isEqualTo(HttpSelfProbe.UNBOUNDED);
        Duration window = HttpSelfProbe.progressWindow(Duration.ofSeconds(60), Duration.ofMillis(-1));
        assertThat(window).isEqualTo(HttpSelfProbe.UNBOUNDED);
        try (ServerSocket silent = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
            HttpSelfProbe probe = new HttpSelfProbe(() -> uri(silent), Duration.ofMillis(200), 2,
                    () -> new ListenerLoad(0, 200, 8192, 8192, 7), window);
            failures(probe, 3);
            assertThat(probe.liveness().up()).isTrue();
            assertThat(probe.readiness().up()).isFalse();
        }
    }
}
