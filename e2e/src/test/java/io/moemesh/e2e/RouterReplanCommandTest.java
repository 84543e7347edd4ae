package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.cli.mesh.GatewayClient;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.router.v1.ReplanRequest;
import io.moemesh.proto.router.v1.RouterServiceGrpc;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * {@code moemesh router replan} on a mesh the launcher started with its router, as {@code up} does: on a fresh mesh
 * the router has seen too few routes, so each replan is the even deal (planner "even") at the next epoch, loaded onto
 * every instance, written to the mesh's placement.json and followed by the gateway. Whether the gateway watches the
 * router (then the command waits until it reported the epoch applied) or only re-reads the placement file (then
 * the router has no watcher and the epoch counts as applied), the command exits 0.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class RouterReplanCommandTest {
    private RunningMesh mesh;
    private GatewayClient gateway;

    @BeforeAll
    void startMesh() {
        mesh = TestMeshes.startWithRouter("router-replan", TestModels.MIXTRAL, 2, 1);
        gateway = new GatewayClient(mesh.gatewayEndpoint(), TestMeshes.CALL_DEADLINE);
    }

    @AfterAll
    void stopMesh() {
        if (gateway != null) {
            gateway.close();
        }
        if (mesh != null) {
            mesh.close();
        }
    }

    @Test
    void replanOnAFreshMesh_publishesTheEvenDealAtEpoch2ThenEpoch3_intoPlacementJson_andTheGatewayFollows() {
        assertThat(moemesh("router", "describe").out()).startsWith("epoch: 1" + System.lineSeparator());

        CliRun first = moemesh("router", "replan", "--timeout", "60s");
        assertThat(first.exit()).as("replan exit code; stderr: %s", first.err()).isZero();
        assertThat(first.out()).startsWith("epoch: 2" + System.lineSeparator() + "planner: even" + System.lineSeparator())
                .contains("instances: 2", "extra replicas: 0", "max slots: 4", "applied: yes");
        assertThat(mesh.placement().getEpoch()).isEqualTo(2);
        awaitGatewayOnEpoch(2);

        CliRun second = moemesh("router", "replan");
        assertThat(second.exit()).as("replan exit code; stderr: %s", second.err()).isZero();
        assertThat(second.out()).startsWith("epoch: 3" + System.lineSeparator() + "planner: even");
        assertThat(mesh.placement().getEpoch()).isEqualTo(3);
        awaitGatewayOnEpoch(3);
        assertThat(moemesh("router", "describe").out()).startsWith("epoch: 3" + System.lineSeparator())
                .contains("replan running: no");
    }

    /** Replan changes the whole mesh: a mesh member that is not an operator identity (the gateway's) is refused. */
    @Test
    void replanAsTheGatewayIdentity_isPermissionDenied() {
        String[] hp = mesh.routerEndpoint().orElseThrow().split(":");
        ManagedChannel ch = Grpc.newChannelBuilderForAddress(hp[0], Integer.parseInt(hp[1]), mesh.credentials("gateway"))
                .build();
        try {
            assertThatThrownBy(() -> RouterServiceGrpc.newBlockingStub(ch).withDeadlineAfter(1, TimeUnit.MINUTES)
                    .replan(ReplanRequest.getDefaultInstance()))
                    .isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.PERMISSION_DENIED);
                        assertThat(e.getStatus().getDescription()).contains("spiffe://moemesh/gateway");
                    });
        } finally {
            ch.shutdownNow();
        }
    }

    private void awaitGatewayOnEpoch(long epoch) {
        GenerateRequest probe = GenerateRequest.newBuilder().setPrompt("epoch probe").setTrace(true)
                .setSampling(SamplingParams.newBuilder().setMaxTokens(1)).build();
        await("gateway on placement epoch " + epoch).atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(200))
                .ignoreExceptions()
                .until(() -> gateway.generate(probe, m -> { }).trace().getPlacementEpoch() == epoch);
    }

    private CliRun moemesh(String... args) {
        return CliRun.on(mesh.stateDir(), args);
    }
}
