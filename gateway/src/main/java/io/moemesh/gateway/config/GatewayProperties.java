package io.moemesh.gateway.config;

import io.moemesh.gateway.auth.ApiKeyFileReload;
import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.model.engine.MicroBatchGrouping;
import io.moemesh.service.tls.TlsSettings;
import java.nio.file.Path;
import java.time.Duration;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * Settings of the gateway ({@code moemesh.gateway.*}, or environment variables {@code MOEMESH_GATEWAY_*}: the
 * same under {@code moemesh up} and under Kubernetes).
 *
 * @param modelDir              Hugging Face model directory (dense weights, tokenizer); required
 * @param grpcHost              address the public gRPC API binds (loopback by default)
 * @param grpcPort              public gRPC port, in [0, 65535]; 0 picks a free one
 * @param placementFile         JSON of router.v1.Placement; empty runs every expert in-process (monolithic), unless
 *                              a router is set. With a router the file is optional (missing at startup: the router
 *                              delivers the first placement) and the highest valid epoch of the two serves
 * @param placementPollInterval how often the placement file is checked for a new epoch (at least 1 ms: the idle
 *                              engine thread waits this long between checks)
 * @param kvCacheTokens         KV positions the paged cache holds over all sequences (rounded up to whole blocks); 0
 *                              (the default) sizes it from the heap ({@link KvCacheSizing}): {@code kvCacheHeapFraction}
 *                              of it, at most 65,536 positions. The cache is on the heap: a configured size above 80%
 *                              of it is refused at startup, naming what it needs
 * @param kvCacheHeapFraction   the share of the JVM's heap a cache sized from it takes, in (0, 0.8]
 * @param kvBlockTokens         tokens per KV block (the unit of prefix caching and of the kvcache-service, whose
 *                              {@code moemesh.kvcache.block-tokens} must be the same), in [1, 1024]; with attend
 *                              offload, large enough that the longest sequence (the model's context, or the
 *                              admission caps if fewer) has at most 65,536 remote blocks, the hashes one Attend
 *                              may carry (refused at startup otherwise: {@code
 *                              KvCacheProperties.Attend#checkRemotePrefix})
 * @param stepTokenBudget       tokens per engine step (decode tokens plus prefill chunks)
 * @param maxRunning            sequences in the engine's batch at once (prefilling their prompt or decoding); with
 *                              admission.max-waiting at most admission.max-grpc-calls-per-connection
 * @param maxInboundMessageBytes largest gRPC message accepted from expert-services and the router (at least 64 KiB);
 *                              the kvcache-service's channel takes this or its largest reply, whichever is larger
 *                              ({@code KvCacheClient.inboundMessageBytes}). An instance's rows of a layer go in as many
 *                              ExpertBatch messages as keep each request and reply within it; a limit that cannot
 *                              hold one row of the model is refused at startup
 * @param shutdownGrace         how long in-flight requests may finish after SIGTERM (DrainLifecycle), ≥ 0
 * @param nativeCacheDir        where native libraries are unpacked (a read-only root filesystem must work)
 * @param dispatch              expert-service data path settings
 * @param admission             queue, rate, size and time limits of the public APIs,
 *                              {@code moemesh.gateway.admission.*} ({@link AdmissionProperties})
 * @param apiKeysFile           "KEY TENANT" lines; with apiKeys unset (or blank) and no file, auth is off (local
 *                              mode). A file that holds no key (comments only) is refused at startup, never auth off
 * @param apiKeys               "KEY:TENANT,KEY:TENANT" (e.g. from the environment: MOEMESH_GATEWAY_API_KEYS); a
 *                              key may not start with {@code #} (a key file could not hold it)
 * @param apiKeysReloadPeriod   how often a running gateway re-reads apiKeysFile and, when its content changed, serves
 *                              its keys instead ({@link io.moemesh.gateway.auth.ApiKeyFileReload}: a file that cannot
 *                              be read or would be refused at startup keeps the last good keys); 0 = read once at
 *                              startup; else at least 1 s. Default 1m, as the TLS files' {@code tls.reload-period}
 * @param health                readiness and liveness checks (actuator groups, mirrored into gRPC health)
 * @param tls                   transport security of the channels to expert-services, {@code moemesh.gateway.tls.*}
 *                              ({@link TlsSettings}): mutual TLS by default, its files required (and checked at
 *                              startup) when a placement file or a router is set; plaintext only with
 *                              {@code mode=plaintext}. Also the credentials of the channel to the router. The public
 *                              gRPC and HTTP APIs stay as they are
 * @param prefixCaching         automatic prefix caching in the paged KV cache, {@code moemesh.gateway.prefix-caching.*}
 * @param router                the router-service to follow and report routes to, {@code moemesh.gateway.router.*}
 *                              ({@link RouterProperties}); no endpoint = no router
 * @param kvcache               the kvcache-service as the KV cache's second tier, {@code moemesh.gateway.kvcache.*}
 *                              ({@link KvCacheProperties}); no endpoint = not used
 * @param microBatches          ping-pong micro-batches per engine step with expert-services (MegaScale-Infer, Zhu et
 *                              al. 2025): the step's sequences split into this many micro-batches so that one's
 *                              expert calls are in flight while the engine computes another's attention and dense
 *                              layers; 1 = off. Tokens do not change (docs/engine.md). Experts in-process never split
 *                              (nothing to overlap). At least 1
 * @param microBatchMinRows     a step with fewer rows (decode tokens plus prefill chunk tokens) runs as one batch:
 *                              each micro-batch reads the dense weights once more, which a small step's overlap may
 *                              not repay. Default 8 is a judgement, not yet a measurement (docs/engine.md). At least 2
 * @param microBatchMinExpertRows a step is split into only as many micro-batches as keep at least this many rows per
 *                              routed expert on average (rows · top_k ÷ (micro-batches · experts)); one batch if not
 *                              even two do. Each micro-batch reads the weights of every expert it routes to, so
 *                              below the point where an expert's GEMM is bound by its multiply-adds a split
 *                              multiplies the expert weight traffic (measured: halving a 32-sequence decode of an
 *                              8-expert top-2 model cost the expert-services 1.5× the CPU per token,
 *                              docs/performance.md). Default 64 keeps that extra near 6% by those measured
 *                              costs (MegaScale-Infer sizes micro-batches for the same reason); 0 = no floor. At
 *                              least 0
 * @param microBatchGrouping    which sequences share a micro-batch: {@code contiguous} (default: the batch cut in
 *                              order) or {@code predicted-path} (sequences whose experts in their previous step were
 *                              alike together, ExpertFlow's token scheduling: fewer distinct experts and instances
 *                              per micro-batch and layer; tokens do not change). A measured option
 *                              (docs/performance.md), not the default
 * @param unixSocketSecurity    how this gateway connects to {@code unix:///path} endpoints (expert-services, the
 *                              kvcache-service): {@code peer-uid} (default: plaintext, the server checks this process's
 *                              uid) or {@code tls} (mutual TLS with {@code tls.*}); must equal the servers'
 *                              {@code moemesh.expert.unix-socket-security} / {@code moemesh.kvcache.unix-socket-security}
 *                              (a mismatch fails the calls with UNAVAILABLE naming the setting). TCP endpoints always
 *                              use {@code tls.*}
 */
@ConfigurationProperties("moemesh.gateway")
public record GatewayProperties(
        Path modelDir,
        @DefaultValue("127.0.0.1") String grpcHost,
        @DefaultValue("9000") int grpcPort,
        Path placementFile,
        @DefaultValue("500ms") Duration placementPollInterval,
        @DefaultValue("0") int kvCacheTokens,
        @DefaultValue("0.5") double kvCacheHeapFraction,
        @DefaultValue("16") int kvBlockTokens,
        @DefaultValue("512") int stepTokenBudget,
        @DefaultValue("256") int maxRunning,
        @DefaultValue("67108864") int maxInboundMessageBytes,
        @DefaultValue("30s") Duration shutdownGrace,
        Path nativeCacheDir,
        @DefaultValue DispatchProperties dispatch,
        @DefaultValue AdmissionProperties admission,
        Path apiKeysFile,
        String apiKeys,
        @DefaultValue("1m") Duration apiKeysReloadPeriod,
        @DefaultValue Health health,
        @DefaultValue TlsSettings tls,
        @DefaultValue PrefixCaching prefixCaching,
        @DefaultValue RouterProperties router,
        @DefaultValue KvCacheProperties kvcache,
        @DefaultValue("2") int microBatches,
        @DefaultValue("8") int microBatchMinRows,
        @DefaultValue("contiguous") String microBatchGrouping,
        @DefaultValue("64") int microBatchMinExpertRows,
        @DefaultValue("peer-uid") UnixSocketSecurity unixSocketSecurity) {

    /**
     * Automatic prefix caching (vLLM's): full KV blocks are kept, keyed by their chained hash (tokens, model
     * fingerprint, tenant), after the sequence that computed them ends, and a later prompt of the same tenant that
     * starts with the same tokens skips their prefill ({@code io.moemesh.model.kv.PrefixCachingKvCache}).
     *
     * @param enabled false: every prompt position is computed, no block is kept after its sequence, and
     *                {@code cached_tokens} is always 0
     */
    public record PrefixCaching(@DefaultValue("true") boolean enabled) {
    }

    /**
     * What the actuator's readiness and liveness groups (on {@code management.server.port}) and the gateway's
     * gRPC health check besides Spring's own availability state.
     *
     * @param engineStall        readiness fails while the engine has work and has not finished a step for this
     *                           long. Unset: max(60 s, layers × dispatch.step-deadline) with expert services,
     *                           since a step may legitimately wait up to step-deadline in every layer while
     *                           replicas fail; 60 s with experts in-process
     * @param engineWedged       liveness fails past this, and as soon as the engine thread died; unset = 3 ×
     *                           engine-stall; never shorter than engine-stall
     * @param httpProbeInterval  how often the public HTTP listener is probed (a GET of /v1/models)
     * @param httpProbeTimeout   a probe whose connect, or whose answer, takes longer than this fails
     * @param httpProbeFailures  failed probes in a row that fail readiness; liveness fails after as many that the
     *                           listener's load does not explain (a probe that timed out while every worker was
     *                           busy or every connection taken, the listener still completing work, waited
     *                           behind clients: HttpSelfProbe)
     * @param httpProbePort      port the probe connects to on server.address; 0 = this gateway's own HTTP port
     * @param grpcHealthInterval how often readiness is re-evaluated into the gRPC health service (it also is
     *                           at once when Spring's readiness state changes)
     */
    public record Health(
            Duration engineStall,
            Duration engineWedged,
            @DefaultValue("5s") Duration httpProbeInterval,
            @DefaultValue("2s") Duration httpProbeTimeout,
            @DefaultValue("3") int httpProbeFailures,
            @DefaultValue("0") int httpProbePort,
            @DefaultValue("1s") Duration grpcHealthInterval) {
        /** The engine-stall default's floor (and the default without expert services). */
        static final Duration MIN_ENGINE_STALL = Duration.ofSeconds(60);

        public Health {
            positive("engine-stall", engineStall, true);
            positive("engine-wedged", engineWedged, true);
            positive("http-probe-interval", httpProbeInterval, false);
            positive("http-probe-timeout", httpProbeTimeout, false);
            positive("grpc-health-interval", grpcHealthInterval, false);
            if (engineStall != null && engineWedged != null && engineWedged.compareTo(engineStall) < 0) {
                throw new IllegalArgumentException("moemesh.gateway.health.engine-wedged (" + engineWedged
                        + ") must not be shorter than moemesh.gateway.health.engine-stall (" + engineStall + ")");
            }
            if (httpProbeFailures < 1) {
                throw new IllegalArgumentException("moemesh.gateway.health.http-probe-failures must be >= 1, got "
                        + httpProbeFailures);
            }
            if (httpProbePort < 0 || httpProbePort > 65535) {
                throw new IllegalArgumentException("moemesh.gateway.health.http-probe-port must be in [0, 65535], got "
                        + httpProbePort);
            }
        }

        private static void positive(String name, Duration d, boolean optional) {
            if (d == null ? !optional : d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException("moemesh.gateway.health." + name + " must be a positive duration, got "
                        + d);
            }
        }

        /** engine-stall, or its default for a model of {@code layers} layers (see the record's javadoc). */
        public Duration engineStall(int layers, Duration stepDeadline, boolean mesh) {
            if (engineStall != null) {
                return engineStall;
            }
            Duration worstStep = mesh ? stepDeadline.multipliedBy(layers) : Duration.ZERO;
            return worstStep.compareTo(MIN_ENGINE_STALL) > 0 ? worstStep : MIN_ENGINE_STALL;
        }

        /** engine-wedged, or 3 × the effective engine-stall. */
        public Duration engineWedged(Duration effectiveStall) {
            if (engineWedged != null) {
                if (engineWedged.compareTo(effectiveStall) < 0) {
                    throw new IllegalArgumentException("moemesh.gateway.health.engine-wedged (" + engineWedged
                            + ") must not be shorter than the engine-stall limit (" + effectiveStall + ")");
                }
                return engineWedged;
            }
            return effectiveStall.multipliedBy(3);
        }
    }

    public GatewayProperties {
        if (modelDir == null) {
            throw new IllegalArgumentException("moemesh.gateway.model-dir (MOEMESH_GATEWAY_MODEL_DIR) is required");
        }
        if (grpcPort < 0 || grpcPort > 65535) {
            throw new IllegalArgumentException("moemesh.gateway.grpc-port must be in [0, 65535] (0 = a free port), got "
                    + grpcPort);
        }
        ApiKeyFileReload.checkPeriod(apiKeysReloadPeriod);
        if (shutdownGrace == null || shutdownGrace.isNegative()) {
            throw new IllegalArgumentException("moemesh.gateway.shutdown-grace must be 0 or more, got " + shutdownGrace);
        }
        if (kvCacheTokens != 0 && kvCacheTokens < 16 || stepTokenBudget < 1 || maxRunning < 1) {
            throw new IllegalArgumentException("moemesh.gateway: kv-cache-tokens 0 (sized from the heap) or ≥ 16, "
                    + "step-token-budget ≥ 1 and max-running ≥ 1 are required");
        }
        KvCacheSizing.checkHeapFraction(kvCacheHeapFraction);
        if (kvBlockTokens < 1 || kvBlockTokens > 1024 || kvCacheTokens > 0 && kvBlockTokens > kvCacheTokens) {
            throw new IllegalArgumentException("moemesh.gateway.kv-block-tokens must be in [1, 1024] and at most "
                    + "kv-cache-tokens (" + kvCacheTokens + "), got " + kvBlockTokens);
        }
        if (placementPollInterval == null || placementPollInterval.compareTo(Duration.ofMillis(1)) < 0) {
            // The idle engine thread waits this long between placement checks (in whole milliseconds): below 1 ms
            // it would not wait at all, and spin.
            throw new IllegalArgumentException("moemesh.gateway.placement-poll-interval must be at least 1ms, got "
                    + placementPollInterval);
        }
        if (maxInboundMessageBytes < 65536) {
            throw new IllegalArgumentException("moemesh.gateway.max-inbound-message-bytes must be >= 65536, got "
                    + maxInboundMessageBytes);
        }
        if (microBatches < 1) {
            throw new IllegalArgumentException("moemesh.gateway.micro-batches must be >= 1 (1 = off), got " + microBatches);
        }
        if (microBatchMinRows < 2) {
            throw new IllegalArgumentException("moemesh.gateway.micro-batch-min-rows must be >= 2, got "
                    + microBatchMinRows);
        }
        if (microBatchMinExpertRows < 0) {
            throw new IllegalArgumentException("moemesh.gateway.micro-batch-min-expert-rows must be >= 0 (0 = no floor), got "
                    + microBatchMinExpertRows);
        }
        if (microBatchGrouping == null || !MicroBatchGrouping.NAMES.contains(microBatchGrouping)) {
            throw new IllegalArgumentException("moemesh.gateway.micro-batch-grouping must be one of "
                    + MicroBatchGrouping.NAMES + ", got '" + microBatchGrouping + "'");
        }
        tls = tls == null ? new TlsSettings(null, null, null, null, null) : tls;
        unixSocketSecurity = unixSocketSecurity == null ? UnixSocketSecurity.PEER_UID : unixSocketSecurity;
        router = router == null ? new RouterProperties(null, null, null, null) : router;
        kvcache = kvcache == null ? KvCacheProperties.off() : kvcache;
        if (kvcache.enabled() && prefixCaching != null && !prefixCaching.enabled()) {
            throw new IllegalArgumentException("moemesh.gateway.kvcache.endpoint needs "
                    + "moemesh.gateway.prefix-caching.enabled=true (fetched KV blocks join the prefix cache)");
        }
        if (expertServices(placementFile, router) && dispatch != null && dispatch.maxConcurrentCalls() < microBatches) {
            // Each micro-batch has a layer's call in flight to an instance at once: a smaller bulkhead refuses one of
            // them every layer, and the micro-batches wait for each other instead of overlapping.
            throw new IllegalArgumentException("moemesh.gateway.dispatch.max-concurrent-calls (" + dispatch.maxConcurrentCalls()
                    + ") must be at least moemesh.gateway.micro-batches (" + microBatches + ")");
        }
        if (admission != null && admission.maxGrpcCallsPerConnection() == 0) {
            // Derived, so that raising max-waiting or max-running alone keeps the gateway starting.
            admission = admission.withMaxGrpcCallsPerConnection((int) Math.min(Integer.MAX_VALUE,
                    Math.max(2048L, (long) admission.maxWaiting() + maxRunning)));
        } else if (admission != null
                && admission.maxGrpcCallsPerConnection() < (long) admission.maxWaiting() + maxRunning) {
            // The gateway holds max-waiting + max-running requests at once and refuses the next with
            // RESOURCE_EXHAUSTED; a client on one connection past a lower stream limit would wait in its own client
            // instead, told nothing.
            throw new IllegalArgumentException("moemesh.gateway.admission.max-grpc-calls-per-connection ("
                    + admission.maxGrpcCallsPerConnection() + ") must be at least moemesh.gateway.admission"
                    + ".max-waiting (" + admission.maxWaiting() + ") + moemesh.gateway.max-running (" + maxRunning
                    + ")");
        }
        // Only a gateway with expert-services (a placement file or a router) or a kvcache-service opens channels that
        // need the certificate.
        if (expertServices(placementFile, router) || kvcache.enabled()) {
            tls.validated("moemesh.gateway.tls");
        }
    }

    /** Experts run in expert-services (placement from a file or the router), not in this process. */
    public boolean expertServices() {
        return expertServices(placementFile, router);
    }

    private static boolean expertServices(Path placementFile, RouterProperties router) {
        return placementFile != null || router.enabled();
    }
}
