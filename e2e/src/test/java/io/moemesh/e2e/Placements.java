package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.moemesh.cli.mesh.GatewayClient;
import io.moemesh.cli.mesh.MeshState;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.proto.expert.v1.LoadAssignmentRequest;
import io.moemesh.proto.expert.v1.LoadAssignmentResponse;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Switches a running mesh without a router to a new placement epoch the way the router does: every instance of the
 * new placement loads its assignment first ({@code LoadAssignment}, as the placer identity), then the gateway's
 * placement file changes, and the gateway picks the epoch up at a step boundary.
 */
final class Placements {
    private Placements() {
    }

    /**
     * The first {@code instances} expert services of the mesh, experts dealt evenly, each on {@code replicas}. Only on a
     * mesh without a router ({@link TestMeshes#start}): a router owns the epochs and would publish over these.
     */
    static PlacementTable switchTo(RunningMesh mesh, GatewayClient gateway, long epoch, int instances, int replicas) {
        if (mesh.routerEndpoint().isPresent()) {
            throw new IllegalStateException("this mesh runs a router (" + mesh.routerEndpoint().get() + "), which owns its "
                    + "placement epochs: switch placements on a mesh of TestMeshes.start, or replan through the router");
        }
        ModelConfig c = mesh.config();
        List<Instance> used = new ArrayList<>();
        for (int i = 0; i < instances; i++) {
            MeshState.Service s = mesh.state().experts().get(i);
            // the endpoint the launcher gave the instance: its domain socket on a unix-transport mesh, else host:port
            String socket = s.environment().get("MOEMESH_EXPERT_GRPC_UNIX_SOCKET");
            used.add(Instance.newBuilder().setId(s.name()).setEndpoint(socket == null ? s.grpcEndpoint() : "unix://" + socket)
                    .setDeviceSlot(i).build());
        }
        Placement p = EvenPlacement.build(epoch, used, c.numLayers(), c.numExperts(), c.hasSharedExpert(), replicas);
        PlacementTable table = PlacementTable.of(p, c.numLayers(), c.dispatchableExperts());
        for (Instance in : used) {
            LoadAssignmentRequest.Builder req = LoadAssignmentRequest.newBuilder().setInstanceId(in.getId()).setEpoch(epoch);
            for (int[] le : table.assignedTo(in.getId())) {
                req.addExperts(ExpertRef.newBuilder().setLayer(le[0]).setExpert(le[1]));
            }
            LoadAssignmentResponse r = loadAssignment(mesh, mesh.state().service(in.getId()), req.build());
            assertThat(r.getEpoch()).as("%s serves epoch", in.getId()).isEqualTo(epoch);
            assertThat(r.getLoadedCount()).as("%s loaded experts", in.getId()).isEqualTo(req.getExpertsCount());
        }
        PlacementFiles.write(Path.of(mesh.state().placementFile()), p);
        GenerateRequest probe = GenerateRequest.newBuilder().setPrompt("epoch probe").setTrace(true)
                .setSampling(SamplingParams.newBuilder().setMaxTokens(1)).build();
        await("gateway on placement epoch " + epoch).atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(200))
                .ignoreExceptions()
                .until(() -> gateway.generate(probe, m -> { }).trace().getPlacementEpoch() == epoch);
        return table;
    }

    /** As the launcher's placer identity, the one the instances accept LoadAssignment from (mutual TLS). */
    static LoadAssignmentResponse loadAssignment(RunningMesh mesh, MeshState.Service s, LoadAssignmentRequest req) {
        ManagedChannel ch = Grpc.newChannelBuilderForAddress("127.0.0.1", s.grpcPort(), mesh.placerCredentials())
                .build();
        try {
            return ExpertServiceGrpc.newBlockingStub(ch).withDeadlineAfter(2, TimeUnit.MINUTES).loadAssignment(req);
        } finally {
            ch.shutdownNow();
        }
    }
}
