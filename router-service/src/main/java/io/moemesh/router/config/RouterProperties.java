package io.moemesh.router.config;

import io.moemesh.service.grpc.UnixSocketSecurity;
import io.moemesh.router.placement.PlacementPlanners;
import io.moemesh.router.prediction.PathPredictors;
import io.moemesh.service.tls.MeshIdentity;
import io.moemesh.service.tls.TlsSettings;
import io.moemesh.service.grpc.InstanceEndpoint;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;

/**
 * Settings of the router-service, {@code moemesh.router.*}: from application.yaml, {@code --key=value} arguments,
 * system properties or environment variables (relaxed binding: {@code moemesh.router.state-dir} =
 * {@code MOEMESH_ROUTER_STATE_DIR}; list entries {@code moemesh.router.instances[0].id} =
 * {@code MOEMESH_ROUTER_INSTANCES_0_ID}).
 *
 * @param modelDir               Hugging Face model directory; only its config.json is read (layers, experts, top-k,
 *                               shared expert, expert size); required
 * @param stateDir               the mesh's state folder: every published placement is written to
 *                               {@code <state-dir>/placement.json}, the router's snapshots (route statistics, epochs)
 *                               to {@code <state-dir>/router/}; required
 * @param grpcHost               address the gRPC server binds; loopback unless told otherwise
 * @param grpcPort               gRPC port; 0 = a free port (logged at startup)
 * @param instances              the expert-service instances to place experts on: id (the instance's
 *                               {@code moemesh.expert.instance-id}) and endpoint ({@code host:port}); or empty with
 *                               {@code instances-from}
 * @param instancesFrom          a placement file (protobuf JSON of router.v1.Placement) whose instances are used when
 *                               {@code instances} is empty; its experts are ignored
 * @param replicas               copies of every expert (the shared one included) in every epoch: exactly this many in
 *                               the even deal (epoch 1, and replans with too few routes), at least this many in a
 *                               planned epoch (every planner; only the slots left over go to the busiest experts), on
 *                               distinct instances and, where the nodes allow, distinct nodes; in [1, instances]
 *                               (with fewer instances, min(replicas, instances)). When the slots or the memory
 *                               budget cannot hold the even deal: with the static instances (discovery.mode=static)
 *                               startup fails naming the property; with discovered ones (discovery.mode=kubernetes)
 *                               the budget is checked for each ready set, so the router starts and a set it cannot
 *                               hold is not placed on (logged: "cannot place on the N ready instances …; waiting for
 *                               the set to change"; health stays NOT_SERVING until a first epoch is published, the
 *                               current epoch stays after one)
 * @param slotsPerInstance       experts one instance may hold per layer, the shared expert's copy included (planner
 *                               budget); 0 = what the even deal needs (the most copies its rule deals one instance:
 *                               about (routed experts + shared) × replicas / instances) plus
 *                               ceil(0.25 × routed experts / instances): 25% of the routed experts as room for copies
 *                               of the busiest ones on top of the replicas, capped by the memory budget when one is set
 * @param memoryBudgetBytes      bytes of expert weights one instance may hold, the shared expert's (at its own size)
 *                               included (planner budget, spread evenly over the layers); 0 = no limit beyond the
 *                               slots. Too small for the even deal: as for the slots (see replicas)
 * @param planner                default PlacementPlanner by name (Replan may name another)
 * @param predictor              PathPredictor by name, for PredictPaths and the online recall
 * @param minRoutesToPlan        tokens the route window needs before a replan plans from it; fewer = the even deal
 * @param windowTokens           latest reported tokens a replan plans from (bounded memory: ~1.5 KiB a token for 32
 *                               layers, top-2)
 * @param loadTimeout            how long each instance has to load an epoch's assignment (LoadAssignment deadline)
 * @param startupRetry           pause between attempts to load the first epoch while instances are not reachable
 * @param autoReplanPeriod       replan by itself this often; 0 = never (the default: only Replan calls re-plan)
 * @param snapshotPeriod         how often the route statistics are written to {@code <state-dir>/router/} (also at
 *                               shutdown and after every publication); at least 1s
 * @param maxInboundMessageBytes largest gRPC message accepted, >= 65536
 * @param shutdownGrace          how long in-flight calls may finish on shutdown, >= 0
 * @param tls                    transport security of the gRPC port and of the calls to the expert-services,
 *                               {@code moemesh.router.tls.*} ({@link TlsSettings}): mutual TLS by default; the
 *                               certificate must be the mesh identity {@code router} (SAN
 *                               {@code spiffe://moemesh/router}), which expert-services accept for LoadAssignment
 *                               ({@code moemesh.expert.placer-identities}); plaintext only with {@code mode=plaintext}
 * @param operatorIdentities     mesh identities (the NAME of a certificate's {@code spiffe://moemesh/NAME} SAN) that may
 *                               call Replan, which changes the whole mesh; everyone else gets PERMISSION_DENIED naming
 *                               its identity. Default: {@code placer} (the local launcher's identity, which
 *                               {@code moemesh router replan} uses). In plaintext mode there is no identity and Replan
 *                               is open to any caller
 * @param discovery              where the instances come from, {@code moemesh.router.discovery.*}
 *                               ({@link DiscoverySettings}): the configured list (static, the default) or the READY
 *                               expert-service pods in Kubernetes (then instances and instances-from stay unset)
 * @param unixSocketSecurity     how the router connects to {@code unix:///path} instance endpoints: {@code peer-uid}
 *                               (default: plaintext, the instance checks this process's uid) or {@code tls} (mutual TLS
 *                               with {@code tls.*}); must equal the instances' {@code moemesh.expert.unix-socket-security}
 */
@ConfigurationProperties("moemesh.router")
public record RouterProperties(
        Path modelDir,
        Path stateDir,
        @DefaultValue("127.0.0.1") String grpcHost,
        @DefaultValue("9300") int grpcPort,
        List<InstanceSetting> instances,
        Path instancesFrom,
        @DefaultValue("1") int replicas,
        @DefaultValue("0") int slotsPerInstance,
        @DefaultValue("0") long memoryBudgetBytes,
        @DefaultValue(PlacementPlanners.DEFAULT) String planner,
        @DefaultValue(PathPredictors.DEFAULT) String predictor,
        @DefaultValue("1024") int minRoutesToPlan,
        @DefaultValue("16384") int windowTokens,
        @DefaultValue("60s") Duration loadTimeout,
        @DefaultValue("2s") Duration startupRetry,
        @DefaultValue("0s") Duration autoReplanPeriod,
        @DefaultValue("30s") Duration snapshotPeriod,
        @DefaultValue("16777216") int maxInboundMessageBytes,
        @DefaultValue("5s") Duration shutdownGrace,
        @DefaultValue TlsSettings tls,
        @DefaultValue("placer") Set<String> operatorIdentities,
        @DefaultValue DiscoverySettings discovery,
        @DefaultValue("peer-uid") UnixSocketSecurity unixSocketSecurity) {

    /**
     * One expert-service instance.
     *
     * @param id                its instance id (router.v1 Instance.id), unique
     * @param endpoint          its gRPC address, {@code host:port} or {@code unix:///absolute/path.sock} (a domain
     *                          socket on the router's host)
     * @param deviceSlot        its device slot (published in the placement), >= 0
     * @param memoryBudgetBytes its memory for expert weights (published in the placement), bytes, >= 0
     */
    public record InstanceSetting(String id, String endpoint, @DefaultValue("0") int deviceSlot,
                                  @DefaultValue("0") long memoryBudgetBytes) {
    }

    public RouterProperties {
        unixSocketSecurity = unixSocketSecurity == null ? UnixSocketSecurity.PEER_UID : unixSocketSecurity;
        if (modelDir == null || modelDir.toString().isBlank()) {
            throw new IllegalArgumentException("moemesh.router.model-dir (environment MOEMESH_ROUTER_MODEL_DIR) is "
                    + "required: the Hugging Face model directory whose config.json gives the layers and experts");
        }
        if (stateDir == null || stateDir.toString().isBlank()) {
            throw new IllegalArgumentException("moemesh.router.state-dir (environment MOEMESH_ROUTER_STATE_DIR) is "
                    + "required: where placement.json and the router's snapshots are written");
        }
        instances = instances == null ? List.of() : List.copyOf(instances);
        discovery = discovery == null ? DiscoverySettings.defaults() : discovery;
        require(!discovery.kubernetes() || (instances.isEmpty() && instancesFrom == null), "instances and instances-from "
                + "must be unset with discovery.mode=kubernetes: the instances are the READY expert-service pods");
        require(discovery.kubernetes() || !instances.isEmpty() || instancesFrom != null, "instances is empty and instances-from is not set: "
                + "the router needs at least one expert-service instance (moemesh.router.instances[0].id and "
                + ".endpoint, or a placement file in moemesh.router.instances-from)");
        require(instances.isEmpty() || instancesFrom == null, "set instances or instances-from, not both");
        Set<String> ids = new HashSet<>();
        for (int i = 0; i < instances.size(); i++) {
            InstanceSetting in = instances.get(i);
            String f = "instances[" + i + "]";
            require(in.id() != null && !in.id().isBlank(), f + ".id must not be blank");
            require(ids.add(in.id()), f + ".id \"" + in.id() + "\" is used twice (ids must be unique)");
            try {
                InstanceEndpoint.parse(in.endpoint());
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("moemesh.router." + f + ".endpoint: " + e.getMessage(), e);
            }
            require(in.deviceSlot() >= 0, f + ".device-slot must be >= 0, got " + in.deviceSlot());
            require(in.memoryBudgetBytes() >= 0, f + ".memory-budget-bytes must be >= 0, got " + in.memoryBudgetBytes());
        }
        require(grpcPort >= 0 && grpcPort <= 65535, "grpc-port must be in [0, 65535], got " + grpcPort);
        require(replicas >= 1, "replicas must be >= 1, got " + replicas);
        require(slotsPerInstance >= 0, "slots-per-instance must be >= 0 (0 = derived), got " + slotsPerInstance);
        require(memoryBudgetBytes >= 0, "memory-budget-bytes must be >= 0 (0 = no limit), got " + memoryBudgetBytes);
        require(PlacementPlanners.names().contains(planner), "planner must be one of "
                + String.join(", ", PlacementPlanners.names()) + ", got \"" + planner + "\"");
        require(PathPredictors.names().contains(predictor), "predictor must be one of "
                + String.join(", ", PathPredictors.names()) + ", got \"" + predictor + "\"");
        require(minRoutesToPlan >= 1, "min-routes-to-plan must be >= 1, got " + minRoutesToPlan);
        require(windowTokens >= 1, "window-tokens must be >= 1, got " + windowTokens);
        require(minRoutesToPlan <= windowTokens, "min-routes-to-plan (" + minRoutesToPlan
                + ") must not exceed window-tokens (" + windowTokens + "): no replan could ever plan");
        require(loadTimeout.compareTo(Duration.ofMillis(100)) >= 0, "load-timeout must be >= 100ms, got " + loadTimeout);
        require(!startupRetry.isNegative() && !startupRetry.isZero(), "startup-retry must be > 0, got " + startupRetry);
        require(!autoReplanPeriod.isNegative(), "auto-replan-period must be >= 0 (0 = off), got " + autoReplanPeriod);
        require(autoReplanPeriod.isZero() || autoReplanPeriod.compareTo(Duration.ofSeconds(10)) >= 0,
                "auto-replan-period must be 0 (off) or >= 10s, got " + autoReplanPeriod);
        require(snapshotPeriod.compareTo(Duration.ofSeconds(1)) >= 0, "snapshot-period must be >= 1s, got "
                + snapshotPeriod);
        // As the gateway's and the kvcache-service's floor: a smaller limit refuses ordinary placements and reports.
        require(maxInboundMessageBytes >= 65536, "max-inbound-message-bytes must be >= 65536, got "
                + maxInboundMessageBytes);
        require(shutdownGrace != null && !shutdownGrace.isNegative(), "shutdown-grace must be >= 0, got "
                + shutdownGrace);
        tls = (tls == null ? new TlsSettings(null, null, null, null, null) : tls).validated("moemesh.router.tls");
        operatorIdentities = Set.copyOf(operatorIdentities == null ? Set.of() : operatorIdentities);
        for (String id : operatorIdentities) {
            try {
                new MeshIdentity(id);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("moemesh.router.operator-identities: " + e.getMessage(), e);
            }
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("moemesh.router." + message);
        }
    }
}
