package io.moemesh.gateway.config;

import io.grpc.InsecureServerCredentials;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.gateway.auth.ApiKeyFileReload;
import io.moemesh.gateway.auth.ApiKeys;
import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.dispatch.LookaheadPrefetch;
import io.moemesh.gateway.dispatch.MeshExpertDispatch;
import io.moemesh.gateway.dispatch.NoPlacementException;
import io.moemesh.gateway.dispatch.TracedLocalExperts;
import io.moemesh.gateway.grpc.ArrivalInterceptor;
import io.moemesh.gateway.grpc.AuthInterceptor;
import io.moemesh.gateway.grpc.GatewayGrpcService;
import io.moemesh.gateway.grpc.TenantRateInterceptor;
import io.moemesh.gateway.kvcache.AttendOffload;
import io.moemesh.gateway.kvcache.RemotePrefixes;
import io.moemesh.gateway.http.PublicApiFilter;
import io.moemesh.gateway.placement.PlacementSource;
import io.moemesh.gateway.placement.RouterPlacementSource;
import io.moemesh.gateway.routing.RouteSampler;
import io.moemesh.gateway.scheduling.DrainLifecycle;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.gateway.serving.AdmissionControl;
import io.moemesh.gateway.serving.GenerationService;
import io.moemesh.gateway.serving.IntakeLimiter;
import io.moemesh.gateway.serving.PromptLimits;
import io.moemesh.gateway.serving.SequenceCaps;
import io.moemesh.gateway.serving.ServingClock;
import io.moemesh.gateway.serving.ServingMetrics;
import io.moemesh.model.MoeModel;
import io.moemesh.model.chat.ChatTemplate;
import io.moemesh.model.engine.Engine;
import io.moemesh.model.engine.ExpertWaits;
import io.moemesh.model.generate.PreemptionPolicy;
import io.moemesh.model.engine.LocalExperts;
import io.moemesh.model.engine.LookaheadObserver;
import io.moemesh.model.engine.MicroBatching;
import io.moemesh.model.engine.RemoteAttention;
import io.moemesh.model.engine.RouteObserver;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.kernel.MatMul;
import io.moemesh.model.kernel.NativeCacheDirectory;
import io.moemesh.model.kv.ModelFingerprint;
import io.moemesh.model.kv.PrefixCachingKvCache;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.grpc.HeldRequestBytes;
import io.moemesh.service.settings.SettingRefusedException;
import io.moemesh.service.tls.MeshCredentials;
import io.opentelemetry.api.OpenTelemetry;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.boot.context.event.ApplicationReadyEvent;
import org.springframework.context.annotation.Bean;
import org.springframework.context.event.EventListener;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.Ordered;
import tools.jackson.databind.json.JsonMapper;

/** Wires the gateway: model, KV cache, engine loop and the public APIs (expert dispatch: ExpertDispatchConfiguration). */
@Configuration(proxyBeanMethods = false)
public class GatewayConfiguration {
    private static final Logger log = LoggerFactory.getLogger(GatewayConfiguration.class);

    /**
     * The gRPC server's own grace when it stops, after the drain (DrainLifecycle, stopped first) gave requests
     * moemesh.gateway.shutdown-grace already: what is left are calls whose last messages are still being written,
     * e.g. to a client that stopped reading. Giving them the shutdown-grace a second time would run the stop past
     * what {@code moemesh down} and the chart give a gateway from SIGTERM to exit (grace + 5 s + kvcache drain-timeout
     * + 25 s, cli MeshShutdown: 5 s for Tomcat, these 5 s, up to 5 s of forced stop, then the beans' close and the
     * exit). Tomcat's graceful shutdown gets the same bound (spring.lifecycle.timeout-per-shutdown-phase in
     * application.yaml).
     */
    static final Duration SERVERS_STOP_GRACE = Duration.ofSeconds(5);

    /**
     * Cold start: the kernel warm-up (seconds of C2 compilation, MatMul.warmUp) starts once the gateway reports
     * SERVING, on its own thread. Its bits do not depend on it (the kernels give the same bits in every JIT tier),
     * only the first requests' speed; started with the JVM, it took the CPU the start itself needed on two cores
     * (docs/performance.md "Cold start").
     */
    @EventListener(ApplicationReadyEvent.class)
    public void warmUpKernels() {
        MatMul.warmUpInBackground();
    }

    @Bean(destroyMethod = "close")
    MoeModel model(GatewayProperties p) {
        if (p.nativeCacheDir() != null) {
            // Refused (the startup fails naming the property) when another user owns or could write it: OpenBLAS is
            // loaded from there. Unset, Blas prepares its own default, ${user.home}/.cache/moemesh/native.
            try {
                NativeCacheDirectory.useUnlessSet(p.nativeCacheDir(), "moemesh.gateway.native-cache-dir");
            } catch (IllegalStateException e) {
                throw new SettingRefusedException("moemesh.gateway.native-cache-dir", e.getMessage(), e);
            }
        }
        return MoeModel.open(p.modelDir());
    }

    /**
     * The model directory's chat template as transformers loads it (ChatTemplate.fromDirectory: chat_template.jinja
     * also without a tokenizer_config.json); null (no bean) when it has none, which Optional injection points see
     * as empty. A template this engine cannot render as Jinja does fails the start here, naming the construct.
     */
    @Bean
    ChatTemplate chatTemplate(GatewayProperties p) {
        return ChatTemplate.fromDirectory(p.modelDir()).orElse(null);
    }

    /** Credentials of the channels to expert-services and the router (moemesh.gateway.tls.*); none in-process. */
    @Bean(destroyMethod = "close")
    MeshCredentials expertChannelCredentials(GatewayProperties p) {
        if (!p.expertServices()) {
            return null;
        }
        MeshCredentials credentials = MeshCredentials.load(p.tls(), "moemesh.gateway.tls");
        if (!credentials.isMtls()) {
            log.warn("moemesh.gateway.tls.mode=plaintext: the channels to expert-services are not encrypted, and "
                    + "expert-services in mtls mode refuse them");
        }
        return credentials;
    }

    /**
     * The paged KV cache with automatic prefix caching (moemesh.gateway.prefix-caching.enabled). Every block hash
     * carries the model's fingerprint (config.json, the weight files' headers and data samples), not the directory's
     * name: the key stays valid for blocks kept outside this process (kvcache.v1), where another model may serve.
     */
    @Bean
    PrefixCachingKvCache kvCache(GatewayProperties p, MoeModel model) {
        int b = p.kvBlockTokens();
        long heap = Runtime.getRuntime().maxMemory();
        KvCacheSizing size = KvCacheSizing.of(p.kvCacheTokens(), p.kvCacheHeapFraction(), b,
                model.config().numLayers(), model.config().kvDim(), heap);
        log.info("KV cache: {}", size.describe(b, heap));
        return new PrefixCachingKvCache(model.config().numLayers(), model.config().kvDim(), b, size.tokens() / b,
                ModelFingerprint.of(model.directory()), p.prefixCaching().enabled());
    }

    @Bean(destroyMethod = "close")
    EngineLoop engineLoop(GatewayProperties p, MoeModel model, Optional<MeshExpertDispatch> mesh,
                          Optional<PlacementSource> source, PrefixCachingKvCache cache, MeterRegistry meters,
                          OpenTelemetry otel, DispatchTraces traces, Optional<LookaheadPrefetch> lookahead,
                          Optional<RouteSampler> routeSampler, Optional<RemotePrefixes> remote,
                          Optional<AttendOffload> attend) {
        RouteObserver routes = routeObserver(lookahead.orElse(null), routeSampler.orElse(null));
        // Long contexts' old blocks attended over in the kvcache-service (moemesh.gateway.kvcache.attend.*).
        RemoteAttention remoteAttention = attend.<RemoteAttention>map(a -> a).orElse(RemoteAttention.NONE);
        // Ping-pong micro-batches only with expert-services: in-process experts compute inside start(), so a split
        // would only read the dense weights once more per micro-batch. Grouped by predicted path if so configured.
        MicroBatching microBatching = new MicroBatching(p.microBatches(), p.microBatchMinRows(), p.microBatchGrouping(),
                p.microBatchMinExpertRows());
        Engine engine = mesh.<Engine>map(d -> new Engine(model.config(), model.denseWeights(), d, routes,
                lookahead.isPresent() ? lookahead.get() : LookaheadObserver.NONE, remoteAttention, microBatching))
                .orElseGet(() -> new Engine(model.config(), model.denseWeights(), new TracedLocalExperts(
                        LocalExperts.fromStore(model.tensors(), model.config()), traces), RouteObserver.NONE,
                        LookaheadObserver.NONE, remoteAttention));
        // The cache is also the admission's prefix source: a new sequence starts after its longest cached prefix. With
        // a kvcache-service, blocks fetched from it join the cache before the sequence is admitted (RemotePrefixes).
        StepScheduler scheduler = remote.isPresent()
                ? new StepScheduler(engine, cache, p.stepTokenBudget(), p.maxRunning(), cache, remote.get(), remote.get())
                : new StepScheduler(engine, cache, p.stepTokenBudget(), p.maxRunning(), cache, PreemptionPolicy.RECOMPUTE);
        Runnable boundary = mesh.isPresent()
                ? () -> source.get().current().ifPresent(mesh.get()::usePlacement)
                : () -> { };
        // The prefill throughput auto preemption compares restores with: each step's prefill tokens over its whole
        // time, weighed by those tokens (TransferRates.prefilled), so decode-heavy steps with a short tail barely count.
        java.util.function.LongConsumer afterStep = remote.isEmpty() ? nanos -> { }
                : nanos -> remote.get().rates().prefilled(scheduler.lastStepPrefillTokens(), nanos);
        EngineLoop loop = new EngineLoop(scheduler, boundary, p.placementPollInterval(), otel, afterStep);
        remote.ifPresent(r -> r.setWakeUp(loop::wakeUp));
        attend.ifPresent(a -> a.setWakeUp(loop::wakeUp));
        if (source.orElse(null) instanceof RouterPlacementSource r) {
            r.onNewPlacement(loop::wakeUp);
        }
        ExpertWaits waits = engine.expertWaits();
        FunctionCounter.builder("moemesh_gateway_expert_overlap_seconds", waits, w -> w.overlappedNanos() / 1e9)
                .description("engine time spent computing other micro-batches while an expert call was in flight "
                        + "(ping-pong)").register(meters);
        FunctionCounter.builder("moemesh_gateway_expert_wait_seconds", waits, w -> w.waitedNanos() / 1e9)
                .description("engine time spent blocked waiting for expert results").register(meters);
        FunctionCounter.builder("moemesh_gateway_expert_awaits", waits, ExpertWaits::calls)
                .description("expert calls awaited by the engine (one per micro-batch per MoE layer)").register(meters);
        FunctionCounter.builder("moemesh_gateway_engine_steps", loop, EngineLoop::steps)
                .description("engine forward passes, each over its step's whole batch (steps that only ended or "
                        + "preempted sequences, and idle passes, not counted)").register(meters);
        Gauge.builder("moemesh_gateway_sequences_running", loop, EngineLoop::running).register(meters);
        Gauge.builder("moemesh_gateway_sequences_waiting", loop, EngineLoop::waiting).register(meters);
        Gauge.builder("moemesh_gateway_kv_blocks_capacity", cache, PrefixCachingKvCache::totalBlocks)
                .description("KV blocks of the gateway's pool").register(meters);
        // Held by running sequences (a shared block once); cached blocks are reclaimable, so they are not "used".
        Gauge.builder("moemesh_gateway_kv_blocks_used", cache, PrefixCachingKvCache::usedBlocks).register(meters);
        Gauge.builder("moemesh_gateway_kv_blocks_remote", cache, PrefixCachingKvCache::remoteBlocks)
                .description("KV blocks of running sequences held in the kvcache-service instead (attend offload)")
                .register(meters);
        Gauge.builder("moemesh_gateway_kv_blocks_cached", cache, PrefixCachingKvCache::cachedBlocks)
                .description("KV blocks no sequence holds that keep a reusable prefix until evicted").register(meters);
        FunctionCounter.builder("moemesh_gateway_prefix_cache_queried_tokens", cache, PrefixCachingKvCache::lookedUpTokens)
                .description("prompt tokens looked up in the prefix cache at admission").register(meters);
        FunctionCounter.builder("moemesh_gateway_prefix_cache_hit_tokens", cache, PrefixCachingKvCache::servedTokens)
                .description("of the looked-up prompt tokens, those served from cached blocks instead of computed")
                .register(meters);
        return loop;
    }

    /** Both observers when both are on (each sees every row's routes at every layer), else the one, else none. */
    private static RouteObserver routeObserver(RouteObserver a, RouteObserver b) {
        if (a == null || b == null) {
            return a != null ? a : b != null ? b : RouteObserver.NONE;
        }
        return (step, layer, experts, weights, pairs) -> {
            a.onRoutes(step, layer, experts, weights, pairs);
            b.onRoutes(step, layer, experts, weights, pairs);
        };
    }

    @Bean
    AdmissionControl admissionControl(GatewayProperties p, PromptLimits limits, EngineLoop loop) {
        AdmissionProperties a = p.admission();
        int context = limits.context();
        return new AdmissionControl(a.maxWaiting(), a.tenantRequestsPerSecond(), a.tenantBurst(),
                a.maxPromptTokens() > 0 ? a.maxPromptTokens() : context, a.maxNewTokens() > 0 ? a.maxNewTokens() : context,
                loop::waiting, System::nanoTime);
    }

    /** Shared by the HTTP and gRPC APIs: large requests in intake at once (see IntakeLimiter). */
    @Bean
    IntakeLimiter intakeLimiter(GatewayProperties p) {
        return new IntakeLimiter(p.admission().largeRequestBytes(), p.admission().maxConcurrentLargeRequests());
    }

    /**
     * The prompt limits and the longest sequence served ({@link PromptLimits#context}): the model's context, or fewer
     * when the paged KV cache holds fewer positions and long sequences stay local (no attend offload), as vLLM caps
     * max_model_len by its cache. The {@code offload} parameter only orders the beans: the offload is set on the cache
     * when its bean is made, and lifts the cache's bound.
     */
    @Bean
    PromptLimits promptLimits(GatewayProperties p, MoeModel model, PrefixCachingKvCache kvCache,
                              Optional<AttendOffload> offload) {
        int context = Math.min(model.config().maxPositionEmbeddings(), kvCache.maxSequencePositions());
        AdmissionProperties a = p.admission();
        return new PromptLimits(context, a.maxPromptTokens() > 0 ? a.maxPromptTokens() : context,
                a.maxNewTokens() > 0 ? a.maxNewTokens() : context, model.tokenizer().maxInputBytesPerToken(),
                a.maxChatMessages());
    }

    /** The clock of request times (arrival, tokens); a test may give its own. */
    @Bean
    ServingClock servingClock() {
        return ServingClock.SYSTEM;
    }

    @Bean
    GenerationService generationService(EngineLoop loop, MoeModel model, AdmissionControl admission, MeterRegistry meters,
                                        DispatchTraces traces, Optional<MeshExpertDispatch> mesh,
                                        Optional<PlacementSource> source, Optional<AttendOffload> attend,
                                        ServingClock clock) {
        // With expert services, nothing is admitted before a placement is applied (a router may not have sent one).
        Runnable ready = mesh.isEmpty() ? () -> { } : () -> {
            if (!mesh.get().hasPlacement()) {
                throw new NoPlacementException(source.get().absentReason());
            }
        };
        // With attend offload, a sequence whose offload failed ends where the local pool does (the cache's bound is lifted).
        return new GenerationService(loop, model.tokenizer(), admission, new ServingMetrics(meters, clock), traces, ready,
                attend.<SequenceCaps>map(o -> o).orElse(SequenceCaps.NONE));
    }

    /** The drain sends the public gRPC port's clients GOAWAY as it starts, so that they reconnect elsewhere. */
    @Bean
    DrainLifecycle drainLifecycle(AdmissionControl admission, EngineLoop loop, GatewayProperties p,
                                  GrpcServerLifecycle grpcServer) {
        return new DrainLifecycle(admission, loop, p.shutdownGrace(), grpcServer::sendGoAway);
    }

    /**
     * The API keys, and with a key file their re-reads every moemesh.gateway.api-keys-reload-period: on Kubernetes the
     * file is a Secret volume the kubelet updates in place, and a revoked key must stop working on the running
     * replicas, not only on those started later.
     */
    @Bean(destroyMethod = "close")
    ApiKeyFileReload apiKeyFileReload(GatewayProperties p, MeterRegistry meters) {
        ApiKeyFileReload reload = ApiKeyFileReload.start(p.apiKeysFile(), p.apiKeys(), p.apiKeysReloadPeriod());
        if (p.apiKeysFile() != null) {
            FunctionCounter.builder("moemesh_gateway_api_keys_reloads", reload, ApiKeyFileReload::reloads)
                    .description("changes of the API key file taken into use by this running gateway").register(meters);
            FunctionCounter.builder("moemesh_gateway_api_keys_reload_failures", reload, ApiKeyFileReload::failures)
                    .description("re-reads of the API key file that found it unreadable or invalid (the last good keys "
                            + "stayed in use)").register(meters);
        }
        return reload;
    }

    @Bean
    ApiKeys apiKeys(ApiKeyFileReload reload) {
        return reload.keys();
    }

    @Bean
    FilterRegistrationBean<PublicApiFilter> publicApiFilter(ApiKeys keys, JsonMapper json, GatewayProperties p,
                                                            IntakeLimiter intake, ServingClock clock,
                                                            GenerationService service) {
        FilterRegistrationBean<PublicApiFilter> r = new FilterRegistrationBean<>(
                new PublicApiFilter(keys, json, p.admission().maxRequestBytes(), intake, clock,
                        p.admission().requestReadTimeout(), p.admission().maxHeldRequestBytes(), service::chargeRate));
        r.setOrder(Ordered.HIGHEST_PRECEDENCE + 10);
        return r;
    }

    @Bean
    GatewayGrpcService gatewayGrpcService(GatewayProperties p, MoeModel model, Optional<ChatTemplate> chat,
                                          GenerationService service, PromptLimits limits, IntakeLimiter intake) {
        return new GatewayGrpcService(model, chat, service, limits, intake, p.admission().maxStreamBacklogBytes(),
                p.admission().requestReadTimeout());
    }

    /** The public gRPC port's budget of request bytes held before half-closes (admission.max-held-request-bytes). */
    @Bean
    HeldRequestBytes heldRequestBytes(GatewayProperties p, MeterRegistry meters) {
        HeldRequestBytes held = new HeldRequestBytes(p.admission().maxHeldRequestBytes(),
                "moemesh.gateway.admission.max-held-request-bytes");
        Gauge.builder("moemesh_gateway_grpc_held_request_bytes", held, HeldRequestBytes::held)
                .description("request bytes public gRPC calls hold before their half-close").register(meters);
        FunctionCounter.builder("moemesh_gateway_grpc_held_request_resets", held, HeldRequestBytes::resets)
                .description("public gRPC calls reset: their request would have taken the held bytes past "
                        + "admission.max-held-request-bytes").register(meters);
        return held;
    }

    @Bean
    GrpcServerLifecycle grpcServer(GatewayProperties p, GatewayGrpcService service, GenerationService generation,
                                   ApiKeys keys, ServingClock clock, HeldRequestBytes heldRequests) {
        // The public API authenticates clients by API key; moemesh.gateway.tls is for the channels to experts only.
        // The arrival interceptor is last: it runs first, so a call's arrival is taken before anything else. The
        // tenant's rate is charged right after authentication, before the call's message is asked for.
        // Resettable calls: a Generate whose client does not read, a call that does not half-close, a call whose
        // request would take the held bytes past their budget, are reset (CallReset) so that nothing of them stays.
        return new GrpcServerLifecycle("gateway", p.grpcHost(), p.grpcPort(), InsecureServerCredentials.create(),
                p.admission().maxRequestBytes(), SERVERS_STOP_GRACE, List.of(service.guarded()),
                List.of(new TenantRateInterceptor(generation), new AuthInterceptor(keys),
                        new ArrivalInterceptor(clock)))
                .resettableCalls(heldRequests, service.halfCloseBound())
                .maxCallsPerConnection(p.admission().maxGrpcCallsPerConnection(),
                        "moemesh.gateway.admission.max-grpc-calls-per-connection");
    }
}
