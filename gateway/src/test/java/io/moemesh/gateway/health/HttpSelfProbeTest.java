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
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The self-probe against real sockets: a listener that answers, a closed port, one that accepts and never answers;
 * and a probe that cannot even be sent (no client).
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
        await().until(() -> probe.check().details().get("last").equals("HTTP 401"));
        assertThat(probe.check().up()).isTrue();
        assertThat(probe.failuresTotal()).isZero();
    }

    @Test
    void closedPort_downAfterTheFailuresInARow_upAgainAfterOneAnswer() throws IOException {
        target.set(Optional.of(URI.create("http://127.0.0.1:" + closedPort() + "/v1/models")));
        HttpSelfProbe probe = new HttpSelfProbe(target::get, Duration.ofSeconds(5), 2);
        failures(probe, 1);
        assertThat(probe.check().up()).as("one failure is not enough").isTrue();
        failures(probe, 2);
        Check down = probe.check();
        assertThat(down.up()).isFalse();
        assertThat(down.reason()).startsWith("the public HTTP listener did not answer 2 probes in a row (last: Connect");

        target.set(Optional.of(answeringUri()));
        await().until(() -> {
            probe.probe();
            return probe.check().up();
        });
        assertThat(probe.check().details()).containsEntry("consecutiveFailures", 0);
    }

    @Test
    void listenerThatAcceptsButNeverAnswers_failsOnTheTimeout() throws IOException {
        // The kernel completes the TCP handshake for the backlog; nothing ever reads the request (a dead poller).
        try (ServerSocket silent = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
            HttpSelfProbe probe = new HttpSelfProbe(
                    () -> Optional.of(URI.create("http://127.0.0.1:" + silent.getLocalPort() + "/v1/models")),
                    Duration.ofMillis(300), 1);
            failures(probe, 1);
            assertThat(probe.check().up()).isFalse();
            assertThat(probe.check().reason()).contains("Timeout");
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
        assertThat(probe.check().up()).isFalse();
        assertThat(probe.check().reason()).contains("IOException: Too many open files");

        outOfDescriptors.set(false);
        probe.probe();
        await().until(() -> probe.check().up());
        assertThat(probe.check().details()).containsEntry("last", "HTTP 401");
    }

    @Test
    void targetNotKnownYet_noProbe_up() {
        HttpSelfProbe probe = new HttpSelfProbe(Optional::empty, Duration.ofSeconds(1), 1);
        probe.probe();
        assertThat(probe.failuresTotal()).isZero();
        assertThat(probe.check().up()).isTrue();
        assertThat(probe.check().details()).containsEntry("last", "no probe yet");
    }
}
