package io.moemesh.gateway.routing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.moemesh.gateway.support.TestCertificates;
import io.moemesh.gateway.support.TestRouter;
import io.moemesh.model.engine.SequenceStep;
import io.moemesh.model.engine.StepContext;
import io.moemesh.proto.router.v1.ReportRoutesRequest;
import io.moemesh.proto.router.v1.RouteSample;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The route reporter over real gRPC with mutual TLS, against a small router on a real socket: a message at least
 * every flush also without traffic (carrying the applied epoch), queued routes in messages of at most 4096 samples,
 * and a stream the router refuses (INVALID_ARGUMENT) or loses is reopened and reporting goes on.
 */
class RouteReporterTest {
    private static final int LAYERS = 3;
    private static final int TOP_K = 2;
    private static final Duration WAIT = Duration.ofSeconds(20);

    private TestRouter router;
    private ManagedChannel channel;
    private RouteSampler sampler;
    private RouteReporter reporter;
    private final AtomicLong epoch = new AtomicLong();

    @BeforeEach
    void start() {
        router = new TestRouter();
        channel = NettyChannelBuilder.forTarget(router.endpoint(), TestCertificates.credentials("gateway").channel())
                .build();
    }

    @AfterEach
    void stop() {
        if (reporter != null) {
            reporter.close();
        }
        channel.shutdownNow();
        router.close();
    }

    private void report(int maxQueued, Duration flush, Duration lifetime) {
        sampler = new RouteSampler(LAYERS, TOP_K, 1.0, maxQueued);
        reporter = new RouteReporter(channel, router.endpoint(), "gw-a", "gw-a-run-", sampler, epoch::get, flush,
                lifetime, Duration.ofMillis(50), Duration.ofMillis(300)).start();
    }

    /** One engine step of {@code tokens} prefill tokens of sequence {@code seq}, routed to experts 2r, 2r+1 mod 8. */
    private void step(long seq, int tokens) {
        StepContext s = StepContext.of(List.of(new SequenceStep(seq, new int[tokens], 0, SequenceStep.Logits.LAST,
                false)));
        int[] experts = new int[tokens * (TOP_K + 1)];
        float[] weights = new float[experts.length];
        for (int r = 0; r < tokens; r++) {
            experts[r * (TOP_K + 1)] = (2 * r) % 8;
            experts[r * (TOP_K + 1) + 1] = (2 * r + 1) % 8;
            experts[r * (TOP_K + 1) + 2] = 8;
            weights[r * (TOP_K + 1)] = 0.75f;
            weights[r * (TOP_K + 1) + 1] = 0.25f;
        }
        for (int l = 0; l < LAYERS; l++) {
            sampler.onRoutes(s, l, experts, weights, TOP_K + 1);
        }
    }

    private List<RouteSample> samples() {
        List<RouteSample> all = new ArrayList<>();
        router.reports.forEach(r -> all.addAll(r.message().getSamplesList()));
        return all;
    }

    @Test
    void withoutTraffic_aMessageEveryFlush_carryingTheAppliedEpoch() {
        report(100, Duration.ofMillis(200), Duration.ofSeconds(60));
        epoch.set(7);
        // The first message waits for the connection (TLS handshake); from then on one per flush.
        await().atMost(WAIT).until(() -> !router.reports.isEmpty());
        for (int i = 0; i < 3; i++) {
            int before = router.reports.size();
            // The router must hear the applied epoch at least once a second (router.proto ReportRoutes).
            await().atMost(Duration.ofSeconds(1)).until(() -> router.reports.size() > before);
        }
        ReportRoutesRequest last = router.reports.getLast().message();
        assertThat(last.getSource()).isEqualTo("gw-a");
        assertThat(last.getSamplesCount()).isZero();
        assertThat(last.getSampleRate()).isEqualTo(1f);
        epoch.set(8);
        await().atMost(Duration.ofSeconds(1)).until(() -> router.reports.getLast().message().getPlacementEpoch() == 8);
    }

    @Test
    void queuedRoutes_areReported_inMessagesOfAtMost4096Samples() {
        report(10_000, Duration.ofMillis(200), Duration.ofSeconds(60));
        step(11, 5000);
        step(12, 3);
        await().atMost(WAIT).until(() -> samples().size() == 5003);

        assertThat(router.reports).allSatisfy(r -> assertThat(r.message().getSamplesCount()).isLessThanOrEqualTo(4096));
        RouteSample first = samples().getFirst();
        assertThat(first.getRequestId()).isEqualTo("gw-a-run-11");
        assertThat(first.getPrefill()).isTrue();
        assertThat(first.getRoute().getPosition()).isZero();
        assertThat(first.getRoute().getLayersList()).hasSize(LAYERS).allSatisfy(l -> {
            assertThat(l.getExpertsList()).containsExactly(0, 1);
            assertThat(l.getWeightsList()).containsExactly(0.75f, 0.25f);
        });
        assertThat(samples().getLast().getRequestId()).isEqualTo("gw-a-run-12");
        assertThat(reporter.samplesReported()).isEqualTo(5003);
    }

    @Test
    void streamRefusedWithInvalidArgument_isReopened_andReportingGoesOn() {
        report(100, Duration.ofMillis(100), Duration.ofSeconds(60));
        await().atMost(WAIT).until(() -> router.reports.size() >= 2);
        router.refuseNextReport.set(true);
        await().atMost(WAIT).until(() -> reporter.streamsFailed() == 1);
        step(21, 4);
        await().atMost(WAIT).until(() -> samples().stream().anyMatch(s -> s.getRequestId().equals("gw-a-run-21")));
        assertThat(router.refused.get()).isEqualTo(1);
    }

    @Test
    void routerRestarted_reportsResume_andRoutesQueuedMeanwhileArrive() {
        report(100, Duration.ofMillis(100), Duration.ofSeconds(60));
        await().atMost(WAIT).until(() -> router.reports.size() >= 2);
        router.stop();
        await().atMost(WAIT).until(() -> reporter.streamsFailed() >= 1);
        step(31, 2);
        router.restart();
        await().atMost(WAIT).until(() -> samples().stream().filter(s -> s.getRequestId().equals("gw-a-run-31")).count() == 2);
    }

    @Test
    void streamIsReplacedAfterItsLifetime_halfClosedNotFailed() {
        report(100, Duration.ofMillis(100), Duration.ofMillis(300));
        step(41, 1);
        await().atMost(WAIT).until(() -> router.reports.size() >= 12);
        step(42, 1);
        await().atMost(WAIT).until(() -> samples().size() == 2);
        assertThat(reporter.streamsFailed()).isZero();
    }
}
