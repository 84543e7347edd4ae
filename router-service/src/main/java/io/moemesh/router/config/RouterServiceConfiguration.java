package io.moemesh.router.config;

import io.grpc.BindableService;
import io.micrometer.core.instrument.MeterRegistry;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.proto.router.v1.Instance;
import io.kubernetes.client.openapi.ApiClient;
import io.moemesh.router.coordination.EpochFloor;
import io.moemesh.router.coordination.EpochStore;
import io.moemesh.router.coordination.InstanceSetFollower;
import io.moemesh.router.coordination.PlacementCoordinator;
import io.moemesh.router.coordination.WatcherRegistry;
import io.moemesh.router.grpc.GrpcInstanceLoader;
import io.moemesh.router.grpc.OperatorPolicy;
import io.moemesh.router.grpc.RouterGrpcService;
import io.moemesh.router.discovery.ConfigMapPublisher;
import io.moemesh.router.discovery.PlacedGate;
import io.moemesh.router.discovery.StaticInstanceDiscovery;
import io.moemesh.router.kubernetes.KubernetesApi;
import io.moemesh.router.kubernetes.KubernetesPlacementConfigMap;
import io.moemesh.router.kubernetes.KubernetesPodConditions;
import io.moemesh.router.kubernetes.KubernetesPodDiscovery;
import io.moemesh.router.kubernetes.RouterLease;
import io.moemesh.router.metrics.DiscoveryMetrics;
import io.moemesh.router.metrics.RouterMetrics;
import io.moemesh.router.placement.PlacementBudget;
import io.moemesh.router.prediction.ModelShape;
import io.moemesh.router.prediction.PathPredictors;
import io.moemesh.router.reports.RouteBook;
import io.moemesh.router.reports.RouteBookSnapshots;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.settings.SettingRefusedException;
import io.moemesh.service.tls.MeshCredentials;
import io.moemesh.service.tls.PeerIdentityInterceptor;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** Wires the route book, the placement coordinator and the gRPC server from {@link RouterProperties}. */
@Configuration(proxyBeanMethods = false)
public final class RouterServiceConfiguration {
    private static final Logger log = LoggerFactory.getLogger(RouterServiceConfiguration.class);

    /** The model as the router sees it: every decoder layer is a MoE layer of the meshes this serves. */
    @Bean
    ModelConfig modelConfig(RouterProperties props) {
        ModelConfig c = ModelConfigReader.read(props.modelDir());
        log.info("model {}: {} layers, {} experts{}, top-{}", props.modelDir(), c.numLayers(), c.numExperts(),
                c.hasSharedExpert() ? " + shared" : "", c.topK());
        return c;
    }

    /** The route book, its statistics restored from {@code <state-dir>/router/routes.json} when there. */
    @Bean
    RouteBook routeBook(RouterProperties props, ModelConfig c) {
        ModelShape shape = new ModelShape(c.numLayers(), c.numExperts(), c.topK());
        RouteBook book = new RouteBook(shape, PathPredictors.named(props.predictor(), shape), props.windowTokens(),
                c.vocabSize());
        if (RouteBookSnapshots.restore(new EpochStore(props.stateDir()).routerDir(), book)) {
            log.info("restored {} routes into the window ({} seen in all)", book.windowSize(), book.ingested());
        }
        return book;
    }

    @Bean
    WatcherRegistry watcherRegistry() {
        return new WatcherRegistry();
    }

    /** The gRPC port's credentials and the client credentials towards the expert-services (moemesh.router.tls.*). */
    @Bean(destroyMethod = "close")
    MeshCredentials meshCredentials(RouterProperties props) {
        MeshCredentials credentials = MeshCredentials.load(props.tls(), "moemesh.router.tls");
        if (!credentials.isMtls()) {
            log.warn("moemesh.router.tls.mode=plaintext: gRPC without TLS, in and out; expert-services accept "
                    + "LoadAssignment from the router only when they run plaintext too");
        }
        return credentials;
    }

    @Bean(destroyMethod = "close")
    GrpcInstanceLoader instanceLoader(MeshCredentials credentials, RouterProperties props) {
        return new GrpcInstanceLoader(credentials.channel(), props.unixSocketSecurity());
    }

    @Bean(destroyMethod = "close")
    PlacementCoordinator placementCoordinator(RouterProperties props, ModelConfig c, RouteBook book,
                                              GrpcInstanceLoader loader) {
        List<Instance> instances = instances(props);
        // Discovered instances: no budget yet (each switch gets the one for its set, routerFollower).
        PlacementBudget budget = instances.isEmpty() ? PlacementBudget.slots(1, c.numExperts())
                : Budgets.of(props, c, instances.size());
        var settings = new PlacementCoordinator.Settings(instances, book.shape(), c.hasSharedExpert(),
                props.replicas(), budget, props.planner(), props.minRoutesToPlan(), props.loadTimeout());
        ExecutorService replans = Executors.newSingleThreadExecutor(
                Thread.ofPlatform().name("router-replan").daemon().factory());
        ExecutorService loads = Executors.newFixedThreadPool(instances.isEmpty() ? 64 : Math.min(64, instances.size()),
                Thread.ofPlatform().name("router-load-", 0).daemon().factory());
        return new PlacementCoordinator(settings, book, loader, new EpochStore(props.stateDir()), replans, loads,
                System::nanoTime);
    }

    @Bean
    RouterMetrics routerMetrics(MeterRegistry registry, RouteBook book, PlacementCoordinator coordinator) {
        return new RouterMetrics(registry, book, coordinator);
    }

    @Bean(destroyMethod = "shutdownNow")
    ExecutorService watcherWaits() {
        return Executors.newVirtualThreadPerTaskExecutor();
    }

    /** Replan only from moemesh.router.operator-identities; in plaintext mode nobody has an identity to check. */
    @Bean
    RouterGrpcService routerGrpcService(RouterProperties props, RouteBook book, PlacementCoordinator coordinator,
                                        WatcherRegistry watchers, ExecutorService watcherWaits, RouterMetrics metrics,
                                        MeshCredentials credentials) {
        OperatorPolicy operators = credentials.isMtls() ? OperatorPolicy.of(props.operatorIdentities())
                : OperatorPolicy.unauthenticated();
        return new RouterGrpcService(book, coordinator, watchers, watcherWaits, metrics::replanFailed, operators);
    }

    /** NOT_SERVING until the first epoch is published ({@link RouterBackground}). */
    @Bean
    GrpcServerLifecycle grpcServer(RouterProperties props, RouterGrpcService service, MeshCredentials credentials) {
        return new GrpcServerLifecycle("router-service", props.grpcHost(), props.grpcPort(), credentials.server(),
                props.maxInboundMessageBytes(), props.shutdownGrace(), List.<BindableService>of(service),
                List.of(new PeerIdentityInterceptor())).startNotServing();
    }

    @Bean
    RouterBackground routerBackground(RouterProperties props, PlacementCoordinator coordinator, RouteBook book,
                                      GrpcServerLifecycle server, RouterGrpcService service, RouterMetrics metrics,
                                      RouterDiscovery discovery, InstanceSetFollower follower) {
        return new RouterBackground(props, coordinator, book, server, service, metrics, discovery, follower);
    }

    /** The instance source (moemesh.router.discovery.*) and, in Kubernetes mode, the placement ConfigMap's writer. */
    @Bean(destroyMethod = "close")
    RouterDiscovery routerDiscovery(RouterProperties props, PlacementCoordinator coordinator, MeterRegistry registry) {
        DiscoverySettings d = props.discovery();
        if (!d.kubernetes()) {
            return new RouterDiscovery(new StaticInstanceDiscovery(instances(props)), null, null);
        }
        ApiClient client = KubernetesApi.client(d.apiServer(), d.resyncPeriod());
        var pods = new KubernetesPodDiscovery(client, d.namespace(), d.selector(), d.grpcPort(), d.resyncPeriod());
        var publisher = new ConfigMapPublisher(new KubernetesPlacementConfigMap(client, d.namespace(), d.configMap()),
                d.namespace() + "/" + d.configMap(), Executors.newSingleThreadScheduledExecutor(
                        Thread.ofPlatform().name("router-configmap").daemon().factory()),
                d.configMapGzipThresholdBytes());
        coordinator.onPublished(o -> publisher.offer(o.placement()));
        // A newer epoch a write finds there raises the floor too.
        publisher.onEpochSeen(e -> {
            if (e > 0) {
                coordinator.floor().raise(e, "ConfigMap " + d.namespace() + "/" + d.configMap());
            }
        });
        readConfigMapEpoch(coordinator, publisher, d);
        RouterLease lease = null;
        if (!d.lease().isEmpty()) {
            // RouterBackground holds placement until it takes the lease, and reads the ConfigMap again when it does
            // (another router may have published meanwhile).
            // Its own client: each call bounded well under a renewal period (the discovery's waits on long watches).
            ApiClient leaseClient = KubernetesApi.withCallTimeout(KubernetesApi.client(d.apiServer(), Duration.ZERO),
                    d.leaseDuration().dividedBy(6));
            lease = new RouterLease(leaseClient, d.namespace(), d.lease(), leaseIdentity(), d.leaseDuration(),
                    () -> Executors.newScheduledThreadPool(2, Thread.ofPlatform().name("router-lease-", 0).daemon()
                            .factory()), System::nanoTime);
        }
        PlacedGate gate = null;
        if (d.readinessGate()) {
            // The expert pods' readiness gate: Ready once the router placed on them (rollouts and drains wait for it).
            gate = new PlacedGate(new KubernetesPodConditions(client, d.namespace(), Clock.systemUTC()), d.selector(),
                    d.grpcPort(), Executors.newSingleThreadExecutor(
                            Thread.ofPlatform().name("router-readiness-gate").daemon().factory()));
            // Only the router that places writes the condition (a standby's last committed epoch is stale).
            RouterLease placing = lease;
            PlacedGate g = gate;
            pods.onPods(all -> {
                if (placing == null || placing.held()) {
                    g.pods(all);
                }
            });
            coordinator.onCommitted(gate::committed);
        }
        return new RouterDiscovery(pods, publisher, gate, lease);
    }

    /**
     * Holds placement until the ConfigMap's epoch is read (again while the API server fails) and raised the floor:
     * a recreated router pod may have lost its state folder (an emptyDir), and must never publish at or below the
     * epoch the ConfigMap, and so every gateway that mounts it, already has.
     */
    static void readConfigMapEpoch(PlacementCoordinator coordinator, ConfigMapPublisher publisher,
                                   DiscoverySettings d) {
        String where = "ConfigMap " + d.namespace() + "/" + d.configMap();
        // A token of its own: a read still running from before (e.g. the start's, when the lease is taken again)
        // ends only its own hold.
        EpochFloor.Hold hold = coordinator.floor().hold(where + " not read yet: its epoch is the least the next one"
                + " goes above");
        publisher.readStoredEpoch(e -> {
            if (e > 0) { // (2^63 and above, unsigned, are no router's epochs)
                coordinator.floor().raise(e, where);
            }
            coordinator.floor().release(hold);
        });
    }

    /** This process in the lease: the pod's name (HOSTNAME in a pod) and a random suffix, one per start. */
    private static String leaseIdentity() {
        String host = System.getenv("HOSTNAME");
        return (host == null || host.isBlank() ? "router" : host.strip()) + "_"
                + java.util.UUID.randomUUID().toString().substring(0, 8);
    }

    /**
     * Readiness (the chart's probe, /actuator/health/readiness): out of service while this router does not hold the
     * placement lease (another router places; this one must not take the gateways' streams).
     */
    @Bean
    HealthIndicator placementLeaseHealthIndicator(RouterDiscovery discovery) {
        return () -> {
            RouterLease lease = discovery.lease();
            if (lease == null) {
                return Health.up().withDetail("lease", "none (one router)").build();
            }
            return (lease.held() ? Health.up() : Health.outOfService()).withDetail("holder", lease.held())
                    .withDetail("identity", lease.identity()).build();
        };
    }

    /** Places on the discovered set: the settle time in Kubernetes mode, at once on the static list. */
    @Bean(destroyMethod = "close")
    InstanceSetFollower instanceSetFollower(RouterProperties props, ModelConfig c, PlacementCoordinator coordinator,
                                            RouterMetrics metrics, RouterDiscovery discovery, MeterRegistry registry) {
        DiscoverySettings d = props.discovery();
        var follower = new InstanceSetFollower(coordinator, n -> Budgets.of(props, c, n, Math.min(props.replicas(), n)),
                props.replicas(), d.kubernetes() ? d.settleTime() : Duration.ZERO, props.startupRetry(),
                () -> Executors.newSingleThreadScheduledExecutor(
                        Thread.ofPlatform().name("router-follow").daemon().factory()),
                metrics::replanFailed, d.kubernetes());
        DiscoveryMetrics.register(registry, discovery.instances(), follower, discovery.publisher());
        return follower;
    }

    /** The configured instances, or those of the placement file in instances-from; none when discovered. */
    static List<Instance> instances(RouterProperties props) {
        if (props.discovery().kubernetes()) {
            return List.of();
        }
        if (props.instances().isEmpty()) {
            List<Instance> fromFile = PlacementFiles.read(props.instancesFrom()).getInstancesList();
            if (fromFile.isEmpty()) {
                throw new SettingRefusedException("moemesh.router.instances-from", "moemesh.router.instances-from: "
                        + props.instancesFrom()
                        + " lists no instances: the router needs at least one expert-service instance");
            }
            return fromFile;
        }
        return props.instances().stream().map(i -> Instance.newBuilder().setId(i.id()).setEndpoint(i.endpoint())
                .setDeviceSlot(i.deviceSlot()).setMemoryBudgetBytes(i.memoryBudgetBytes()).build()).toList();
    }
}
