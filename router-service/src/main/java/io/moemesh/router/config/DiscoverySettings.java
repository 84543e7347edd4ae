package io.moemesh.router.config;

import io.moemesh.router.discovery.ConfigMapPublisher;
import io.moemesh.router.discovery.LabelSelector;
import java.net.URI;
import java.time.Duration;
import java.util.Locale;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * Where the router's expert-service instances come from, {@code moemesh.router.discovery.*} (issue 12, item 3).
 *
 * @param mode          {@code static} (the default): the configured {@code moemesh.router.instances} or
 *                      {@code instances-from}, what {@code ./moemesh up} gives; {@code kubernetes}: the READY pods of
 *                      {@code namespace} matching {@code label-selector}, listed and watched through the Kubernetes API,
 *                      every placement also written to {@code config-map} (then {@code instances} and
 *                      {@code instances-from} must be unset)
 * @param namespace     the namespace of the expert-service pods and of the ConfigMap; required in kubernetes mode (the
 *                      chart sets it from the pod's own namespace)
 * @param labelSelector the expert-service pods' labels, equality terms {@code key=value,key=value}; required in
 *                      kubernetes mode
 * @param configMap     the ConfigMap (in {@code namespace}) whose {@code placement.json} key gets every published
 *                      placement; it must exist (the chart creates it; the router only updates it); required in
 *                      kubernetes mode
 * @param grpcPort      the expert-service gRPC port for a pod that declares no container port named {@code grpc} (one
 *                      named {@code grpc} wins), in [1, 65535]
 * @param settleTime    how long the ready set must stay unchanged before a new epoch is placed on it: pods that come or
 *                      become ready within it make one epoch; >= 0
 * @param resyncPeriod  how often the pods are listed afresh (between lists a watch delivers changes at once; when the
 *                      API server does not serve the watch, changes are seen at the next list); >= 1s
 * @param apiServer     the Kubernetes API server's URL, e.g. {@code http://127.0.0.1:8001} behind {@code kubectl proxy};
 *                      empty (the default) = in-cluster: the pod's service account token and CA
 * @param configMapGzipThresholdBytes the most bytes the placement may take in {@code config-map}, counted as stored:
 *                      compact JSON up to it is written plain under {@code placement.json}; past it the gzip of the
 *                      JSON goes under {@code binaryData} {@code placement.json.gz} (the plain key removed in the same
 *                      update) if its base64 length is within it too; else nothing is written (logged, counted). In
 *                      [1, 1048576] (the API server's limit on a ConfigMap's data); default 786432 (768 KiB) leaves a
 *                      quarter of the limit for other keys and metadata ({@code ConfigMapPublisher})
 * @param readinessGate whether the router sets the pod condition {@code moemesh.io/placed} on the expert-service pods
 *                      (kubernetes mode): True once a published epoch includes the pod and it committed it, False when a
 *                      newer epoch no longer includes it ({@code PlacedGate}). For pods whose template lists it in
 *                      {@code readinessGates} (the chart's {@code expertService.readinessGate.enabled}), so they turn
 *                      Ready only once placed; the router's Role must allow {@code patch} on {@code pods/status}.
 *                      Default false: the chart turns it on together with the gate and that permission
 * @param lease         the name of the {@code coordination.k8s.io/v1} Lease (in {@code namespace}) the router must hold
 *                      to place (kubernetes mode): a router that does not hold it switches no placement, writes no
 *                      ConfigMap, ends its WatchPlacement and ReportRoutes streams and is not ready, so two routers
 *                      that overlap never both switch the expert-services ({@code RouterLease}); the router's Role must
 *                      allow get, create and update on leases. Empty (the default) = no lease: one router is assumed
 *                      (the chart sets it)
 * @param leaseDuration how long a router that stopped renewing the lease keeps it: another one takes it over only
 *                      after that ({@code spec.leaseDurationSeconds}, renewed every third of it); >= 3s, whole seconds
 */
public record DiscoverySettings(@DefaultValue("static") String mode, String namespace, String labelSelector,
                                String configMap, @DefaultValue("9100") int grpcPort,
                                @DefaultValue("2s") Duration settleTime, @DefaultValue("30s") Duration resyncPeriod,
                                String apiServer,
                                @DefaultValue("786432") int configMapGzipThresholdBytes,
                                @DefaultValue("false") boolean readinessGate, String lease,
                                @DefaultValue("15s") Duration leaseDuration) {
    public static final String STATIC = "static";
    public static final String KUBERNETES = "kubernetes";

    public DiscoverySettings {
        mode = mode == null || mode.isBlank() ? STATIC : mode.strip().toLowerCase(Locale.ROOT);
        require(mode.equals(STATIC) || mode.equals(KUBERNETES), "mode must be static or kubernetes, got \"" + mode
                + "\"");
        settleTime = settleTime == null ? Duration.ofSeconds(2) : settleTime;
        resyncPeriod = resyncPeriod == null ? Duration.ofSeconds(30) : resyncPeriod;
        require(grpcPort >= 1 && grpcPort <= 65535, "grpc-port must be in [1, 65535], got " + grpcPort);
        require(!settleTime.isNegative(), "settle-time must be >= 0, got " + settleTime);
        require(resyncPeriod.compareTo(Duration.ofSeconds(1)) >= 0, "resync-period must be >= 1s, got "
                + resyncPeriod);
        lease = lease == null ? "" : lease.strip();
        leaseDuration = leaseDuration == null ? Duration.ofSeconds(15) : leaseDuration;
        require(lease.isEmpty() || lease.matches("[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"), "lease must be a DNS "
                + "subdomain name, got \"" + lease + "\"");
        require(leaseDuration.compareTo(Duration.ofSeconds(3)) >= 0 && leaseDuration.toNanos() % 1_000_000_000L == 0,
                "lease-duration must be whole seconds, >= 3s, got " + leaseDuration);
        if (mode.equals(KUBERNETES)) {
            require(namespace != null && !namespace.isBlank(), "namespace is required with mode=kubernetes "
                    + "(MOEMESH_ROUTER_DISCOVERY_NAMESPACE; the chart sets it from the pod's namespace)");
            require(namespace.matches("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"), "namespace must be a DNS label, got \""
                    + namespace + "\"");
            require(labelSelector != null && !labelSelector.isBlank(), "label-selector is required with "
                    + "mode=kubernetes: the expert-service pods' labels, key=value,key=value");
            try {
                LabelSelector.parse(labelSelector);
            } catch (IllegalArgumentException e) {
                require(false, "label-selector: " + e.getMessage());
            }
            require(configMap != null && !configMap.isBlank(), "config-map is required with mode=kubernetes: the "
                    + "ConfigMap the placement is published to");
            require(configMap.matches("[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"), "config-map must be a DNS subdomain "
                    + "name, got \"" + configMap + "\"");
        }
        require(configMapGzipThresholdBytes >= 1 && configMapGzipThresholdBytes <= ConfigMapPublisher.LIMIT_BYTES,
                "config-map-gzip-threshold-bytes must be in [1, " + ConfigMapPublisher.LIMIT_BYTES + "], got "
                        + configMapGzipThresholdBytes);
        if (apiServer != null && !apiServer.isBlank()) {
            URI u;
            try {
                u = URI.create(apiServer.strip());
            } catch (IllegalArgumentException e) {
                u = null;
            }
            require(u != null && ("http".equals(u.getScheme()) || "https".equals(u.getScheme())) && u.getHost() != null,
                    "api-server must be an http(s) URL, got \"" + apiServer + "\"");
        }
    }

    /** The defaults: static mode. */
    static DiscoverySettings defaults() {
        return new DiscoverySettings(null, null, null, null, 9100, null, null, null,
                ConfigMapPublisher.DEFAULT_GZIP_THRESHOLD_BYTES, false, "", Duration.ofSeconds(15));
    }

    public boolean kubernetes() {
        return mode.equals(KUBERNETES);
    }

    public LabelSelector selector() {
        return LabelSelector.parse(labelSelector);
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("moemesh.router.discovery." + message);
        }
    }
}
