package io.moemesh.e2e;

import io.moemesh.cli.mesh.GatewayClient;
import io.moemesh.cli.mesh.Generation;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.golden.GoldenCase;
import io.moemesh.service.placement.PlacementTable;
import java.util.stream.Stream;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * All golden cases of one model through one mesh of three expert services, under four placements in turn
 * (1, 2 and 3 instances without replicas, 3 instances with every expert on 2): each placement is a new epoch
 * the services load with LoadAssignment and the gateway reads from its placement file.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class GoldenMeshTestBase {
    private RunningMesh mesh;
    private GatewayClient gateway;
    private long epoch;

    abstract String model();

    @BeforeAll
    void startMesh() {
        mesh = TestMeshes.start("golden-" + model(), model(), 3, 1);
        gateway = new GatewayClient(mesh.gatewayEndpoint(), TestMeshes.CALL_DEADLINE);
        epoch = mesh.state().epoch();
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

    static Stream<Arguments> placements() {
        return Stream.of(Arguments.of(1, 1), Arguments.of(2, 1), Arguments.of(3, 1), Arguments.of(3, 2));
    }

    @ParameterizedTest(name = "{0} instance(s), {1} replica(s)")
    @MethodSource("placements")
    void goldenCases_giveTheReferenceIdsRoutesTokensAndLogits_underEveryPlacement(int instances, int replicas) {
        PlacementTable table = Placements.switchTo(mesh, gateway, ++epoch, instances, replicas);
        var c = mesh.config();
        SoftAssertions soft = new SoftAssertions();
        for (GoldenCase g : GoldenCase.load(model())) {
            Generation r = gateway.generate(GoldenAssert.request(g), m -> { });
            GoldenAssert.matchesGolden(soft, g, r);
            GoldenAssert.dispatchFollows(soft, g, r, table, c.numExperts(), c.hasSharedExpert());
        }
        soft.assertAll();
    }
}
