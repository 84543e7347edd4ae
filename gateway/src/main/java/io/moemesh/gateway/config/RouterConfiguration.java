package io.moemesh.gateway.config;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import io.moemesh.gateway.routing.RouteReporter;
import io.moemesh.gateway.routing.RouteSampler;
import io.moemesh.model.MoeModel;
import io.moemesh.service.tls.MeshCredentials;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * The gateway's link to the router-service ({@code moemesh.gateway.router.*}): one channel (mutual TLS with the
 * gateway's mesh credentials, {@code moemesh.gateway.tls.*}) that carries the placement watch
 * ({@code RouterPlacementSource}, wired in {@link ExpertDispatchConfiguration}) and the route reports. No beans without
 * an endpoint.
 */
@Configuration(proxyBeanMethods = false)
public class RouterConfiguration {
    /** How long one ReportRoutes stream stays open before it is half-closed and replaced (RouteReporter). */
    static final Duration REPORT_STREAM_LIFETIME = Duration.ofSeconds(60);

    @Bean(destroyMethod = "shutdownNow")
    ManagedChannel routerChannel(GatewayProperties p, Optional<MeshCredentials> expertChannelCredentials) {
        if (!p.router().enabled()) {
            return null;
        }
        // Keepalive: a router that vanished without closing its connections (a lost node) is noticed within about
        // 40 s, not only when TCP gives up; the watch then reconnects with backoff.
        return NettyChannelBuilder.forTarget(p.router().endpoint(), expertChannelCredentials.orElseThrow().channel())
                .keepAliveTime(30, TimeUnit.SECONDS).keepAliveTimeout(10, TimeUnit.SECONDS)
                .maxInboundMessageSize(p.maxInboundMessageBytes()).build();
    }

    /** The engine's route observer that samples tokens for the reports. */
    @Bean
    RouteSampler routeSampler(GatewayProperties p, MoeModel model) {
        if (!p.router().enabled()) {
            return null;
        }
        RouterProperties.Report r = p.router().report();
        return new RouteSampler(model.config().numLayers(), model.config().topK(), r.sampleRate(), r.maxQueuedTokens());
    }

    @Bean(destroyMethod = "close")
    RouteReporter routeReporter(GatewayProperties p, Optional<ManagedChannel> routerChannel,
                                Optional<RouteSampler> sampler, Optional<MeshExpertDispatch> mesh, MeterRegistry meters) {
        if (routerChannel.isEmpty() || sampler.isEmpty() || mesh.isEmpty()) {
            return null;
        }
        RouterProperties r = p.router();
        MeshExpertDispatch dispatch = mesh.get();
        // Unique per gateway process: the router keeps sequence context by request id across all gateways.
        String prefix = r.watcherId() + "-" + Long.toString(System.currentTimeMillis(), 36) + "-";
        RouteReporter reporter = new RouteReporter(routerChannel.get(), r.endpoint(), r.watcherId(), prefix,
                sampler.get(), dispatch::epoch, r.report().flushInterval(), REPORT_STREAM_LIFETIME,
                r.reconnect().initialBackoff(), r.reconnect().maxBackoff());
        FunctionCounter.builder("moemesh_gateway_route_samples_reported", reporter, RouteReporter::samplesReported)
                .description("sampled token routes sent to the router (ReportRoutes)").register(meters);
        FunctionCounter.builder("moemesh_gateway_route_samples_dropped", sampler.get(), RouteSampler::dropped)
                .description("sampled token routes dropped: the report queue (report.max-queued-tokens) was full")
                .register(meters);
        FunctionCounter.builder("moemesh_gateway_route_reports_sent", reporter, RouteReporter::messagesSent)
                .description("ReportRoutes messages sent (with or without samples)").register(meters);
        FunctionCounter.builder("moemesh_gateway_route_reports_failed", reporter, RouteReporter::streamsFailed)
                .description("ReportRoutes streams that failed; what was sent on them may be lost").register(meters);
        return reporter.start();
    }
}
