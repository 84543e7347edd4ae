package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.Authenticator;
import java.net.CookieHandler;
import java.net.ProxySelector;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicInteger;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
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
     * A probe that cannot be sent (here its client cannot be made, as when the process is out of file descriptors)
     * is a failed probe, which the probe itself counts: the next probes run, and readiness follows them.
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
            assertThat(throwing.readiness().reason()).contains("Too many open files");
        }
    }

    /**
     * A client whose send fails and whose shutdown then throws too: still a failed probe, and the next probes run
     * (before, the throw left the probe marked in flight for good, so it never probed again, and escaped into the
     * monitor thread); readiness keeps following the checks.
     */
    @Test
    void clientWhoseShutdownThrows_isAFailedProbe_andTheNextProbesRun_readinessKeepsFollowingTheChecks() {
        AtomicInteger sends = new AtomicInteger();
        // Failures to fail out of reach: readiness follows the engine here, not a race between the probes every 5 ms
        // and the assertions (two failed probes used to turn it false before the first one, on a loaded machine).
        HttpSelfProbe escaping = new HttpSelfProbe(() -> Optional.of(URI.create("http://127.0.0.1:1/")),
                Duration.ofSeconds(1), 1_000_000, () -> new UnsendableClient(sends));
        List<Boolean> seen = new CopyOnWriteArrayList<>();
        try (HealthMonitor m = new HealthMonitor(new ExpertReadiness(null), engine, escaping, Duration.ofMillis(5),
                Duration.ofMillis(5), seen::add)) {
            m.start();
            m.acceptingTraffic(true);
            assertThat(seen).containsExactly(false, true);
            await().atMost(Duration.ofSeconds(30)).until(() -> sends.get() >= 3 && escaping.failuresTotal() >= 3);
            engineAlive = false;
            // Only the monitor thread evaluates from here on.
            await().atMost(Duration.ofSeconds(30)).until(() -> seen.getLast() == Boolean.FALSE);
            assertThat(seen).containsExactly(false, true, false);
        }
    }

    /** A client whose send fails and whose shutdown then throws too. */
    private static final class UnsendableClient extends HttpClient {
        private final AtomicInteger sends;

        UnsendableClient(AtomicInteger sends) {
            this.sends = sends;
        }

        @Override
        public <T> CompletableFuture<HttpResponse<T>> sendAsync(HttpRequest request,
                                                                HttpResponse.BodyHandler<T> handler) {
            sends.incrementAndGet();
            throw new IllegalStateException("send refused");
        }

        @Override
        public <T> CompletableFuture<HttpResponse<T>> sendAsync(HttpRequest request,
                HttpResponse.BodyHandler<T> handler, HttpResponse.PushPromiseHandler<T> push) {
            return sendAsync(request, handler);
        }

        @Override
        public <T> HttpResponse<T> send(HttpRequest request, HttpResponse.BodyHandler<T> handler) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void shutdown() {
            throw new IllegalStateException("shutdown failed");
        }

        @Override
        public Optional<CookieHandler> cookieHandler() {
            return Optional.empty();
        }

        @Override
        public Optional<Duration> connectTimeout() {
            return Optional.empty();
        }

        @Override
        public Redirect followRedirects() {
            return Redirect.NEVER;
        }

        @Override
        public Optional<ProxySelector> proxy() {
            return Optional.empty();
        }

        @Override
        public SSLContext sslContext() {
            return null;
        }

        @Override
        public SSLParameters sslParameters() {
            return null;
        }

        @Override
        public Optional<Authenticator> authenticator() {
            return Optional.empty();
        }

        @Override
        public Version version() {
            return Version.HTTP_1_1;
        }

        @Override
        public Optional<Executor> executor() {
            return Optional.empty();
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
