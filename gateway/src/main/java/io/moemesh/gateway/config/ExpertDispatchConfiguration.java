package io.moemesh.gateway.config;

import io.grpc.ChannelCredentials;
import io.grpc.ManagedChannel;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.dispatch.ExpertBatches;
import io.moemesh.gateway.dispatch.LookaheadPrefetch;
import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import io.moemesh.gateway.placement.FilePlacementSource;
import io.moemesh.gateway.placement.PlacementSource;
import io.moemesh.gateway.placement.RouterPlacementSource;
import io.moemesh.model.MoeModel;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.grpc.HopBufferPool;
import io.moemesh.service.grpc.TensorArrayPool;
import io.moemesh.service.tls.MeshCredentials;
import io.opentelemetry.api.OpenTelemetry;
import java.util.Optional;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * Wires the gateway's expert dispatch: where placements come from (file or router watch), the dispatch to
 * expert-services under them, the per-sequence dispatch traces and the lookahead prefetch hints. Split out of
 * {@link GatewayConfiguration} (which builds the engine on these beans) to keep each file to one responsibility.
 */
@Configuration(proxyBeanMethods = false)
public class ExpertDispatchConfiguration {

    /**
     * Null when experts run in-process (no placement file, no router). With a router: its watch (started here),
     * beginning from the placement file when one is set (the highest valid epoch of the two serves; with a router
     * the file may be missing at first).
     */
    @Bean
    PlacementSource placementSource(GatewayProperties p, MoeModel model, Optional<ManagedChannel> routerChannel,
                                    MeterRegistry meters) {
        int layers = model.config().numLayers();
        int experts = model.config().dispatchableExperts();
        if (!p.router().enabled()) {
            return p.placementFile() == null ? null : new FilePlacementSource(p.placementFile(), layers, experts,
                    p.placementPollInterval(), System::nanoTime);
        }
        PlacementSource file = p.placementFile() == null ? null : FilePlacementSource.optional(p.placementFile(),
                layers, experts, p.placementPollInterval(), System::nanoTime);
        RouterProperties r = p.router();
        RouterPlacementSource watch = new RouterPlacementSource(routerChannel.orElseThrow(), r.endpoint(), r.watcherId(),
                layers, experts, file, r.reconnect().initialBackoff(), r.reconnect().maxBackoff());
        FunctionCounter.builder("moemesh_gateway_router_watch_reconnects", watch, RouterPlacementSource::reconnects)
                .description("placement watches opened again after the previous one failed or ended").register(meters);
        FunctionCounter.builder("moemesh_gateway_router_placements_rejected", watch, RouterPlacementSource::rejected)
                .description("placements from the router ignored: not fitting the model, or not newer").register(meters);
        return watch.start();
    }

    /**
     * Where traced requests' prompt rows went, per sequence. A record lives from its request's prompt pass until
     * the request ends (running, or waiting preempted), so at most every sequence the scheduler holds has one:
     * max-running plus admission.max-waiting (which bounds the waiting ones, preempted included), plus 64 for
     * requests admitted at the same instant. Beyond that the eldest is dropped (its trace would have no
     * dispatch): a bound that only a sequence that never reports back can reach, so nothing leaks.
     */
    @Bean
    DispatchTraces dispatchTraces(GatewayProperties p, MoeModel model) {
        return new DispatchTraces(model.config().numLayers(), p.maxRunning() + Math.max(0, p.admission().maxWaiting()) + 64);
    }

    @Bean
    MeshExpertDispatch meshDispatch(GatewayProperties p, MoeModel model, Optional<PlacementSource> source,
                                    Optional<MeshCredentials> expertChannelCredentials, MeterRegistry meters,
                                    OpenTelemetry otel, DispatchTraces traces) {
        if (source.isEmpty()) {
            return null;
        }
        ChannelCredentials credentials = expertChannelCredentials.orElseThrow().channel();
        DispatchProperties d = p.dispatch();
        // Values checked by DispatchProperties.
        DType wire = d.wireDtype().equals("bf16") ? DType.DTYPE_BF16 : DType.DTYPE_F32;
        // A reply over max-inbound-message-bytes would end the instance's stream: big batches go in several messages.
        int maxRows = ExpertBatches.maxRowsPerCall(p.maxInboundMessageBytes(), model.config().hiddenSize(),
                wire == DType.DTYPE_BF16 ? 2 : 4, model.config().pairsPerToken());
        InstanceMeters instanceMeters = new InstanceMeters(meters);
        MeshExpertDispatch dispatch = new MeshExpertDispatch(model.config().hiddenSize(), in -> {
            // A stream neither drained nor answered for a whole step deadline is not being read: the calls sent
            // before it stopped moving have been given up by then. Ending it (and freeing what waited) also fails,
            // early, the calls sent since (the other micro-batch, later layers), which may be within their deadlines.
            GrpcInstanceClient client = new GrpcInstanceClient(in.getId(), in.getEndpoint(), credentials,
                    p.unixSocketSecurity(), wire, p.maxInboundMessageBytes(), otel, d.stepDeadline(), d.sharedMemory());
            try {
                return instanceMeters.open(client, GrpcInstanceClient.transportOf(in.getEndpoint()), d);
            } catch (RuntimeException e) {
                // Nothing holds the client yet, and a later placement tries again: each failure would leak a channel.
                client.close();
                throw e;
            }
        }, d.stepDeadline(), d.picker(), traces, maxRows);
        source.get().current().ifPresent(dispatch::usePlacement);
        Gauge.builder("moemesh.hop.buffer.pool.bytes.in.use", HopBufferPool.shared(), HopBufferPool::bytesInUse)
                .description("bytes of the per-layer hop's conversion chunks in use (returns to 0 between messages)")
                .tag("service", "gateway").register(meters);
        Gauge.builder("moemesh.hop.tensor.pool.bytes.idle", TensorArrayPool.shared(), TensorArrayPool::idleBytes)
                .description("bytes of reused hop tensor arrays idle in the pool (at most 64 MiB)")
                .tag("service", "gateway").register(meters);
        Gauge.builder("moemesh_gateway_placement_epoch", dispatch, MeshExpertDispatch::epoch)
                .description("the placement epoch expert calls are dispatched under; 0 = none yet").register(meters);
        return dispatch;
    }

    /**
     * Prefetch hints from the engine's lookahead (moemesh.gateway.dispatch.lookahead-prefetch.*): only with
     * expert services and when enabled.
     */
    @Bean
    LookaheadPrefetch lookaheadPrefetch(GatewayProperties p, MoeModel model, Optional<MeshExpertDispatch> mesh,
                                        MeterRegistry meters) {
        LookaheadPrefetchProperties lp = p.dispatch().lookaheadPrefetch();
        if (mesh.isEmpty() || !lp.enabled()) {
            return null;
        }
        var c = model.config();
        LookaheadPrefetch prefetch = new LookaheadPrefetch(mesh.get(), Math.min(lp.topK() > 0 ? lp.topK() : c.topK(),
                c.numExperts()), c.topK(), c.hasSharedExpert() ? c.numExperts() : -1, lp.maxInFlight());
        FunctionCounter.builder("moemesh_gateway_lookahead_true_experts", prefetch, LookaheadPrefetch::trueExperts)
                .description("true routed experts (tokens x top-k) at layers the lookahead predicted").register(meters);
        FunctionCounter.builder("moemesh_gateway_lookahead_hits", prefetch, LookaheadPrefetch::hits)
                .description("of those, the ones among the lookahead's guesses (recall = hits / true experts)")
                .register(meters);
        FunctionCounter.builder("moemesh_gateway_prefetch_hints", prefetch, LookaheadPrefetch::hintsSent)
                .description("experts hinted to expert services (Prefetch)").register(meters);
        FunctionCounter.builder("moemesh_gateway_prefetch_requests", prefetch, LookaheadPrefetch::requestsSent)
                .description("Prefetch calls sent").register(meters);
        FunctionCounter.builder("moemesh_gateway_prefetch_failed", prefetch, LookaheadPrefetch::requestsFailed)
                .description("Prefetch calls that failed (never a request)").register(meters);
        FunctionCounter.builder("moemesh_gateway_prefetch_dropped", prefetch, LookaheadPrefetch::requestsDropped)
                .description("Prefetch calls not sent: max-in-flight were in flight").register(meters);
        return prefetch;
    }
}
