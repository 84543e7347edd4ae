package io.moemesh.router.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.moemesh.proto.expert.v1.AssignmentStage;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.coordination.AssignedExpert;
import io.moemesh.router.coordination.HeldEpochs;
import io.moemesh.router.coordination.InstanceRefusedException;
import io.moemesh.router.support.FakeExpertService;
import io.moemesh.router.support.RouterTestMesh;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The router's LoadAssignment client with its stages, over a real socket with mutual TLS (as the identity
 * {@code router}) against a fake expert-service that keeps the epoch rules of expert.proto.
 */
class GrpcInstanceLoaderTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private final FakeExpertService expert = new FakeExpertService(RouterTestMesh.certs(), "expert-0");
    private final GrpcInstanceLoader loader = new GrpcInstanceLoader(RouterTestMesh.certs().channelCredentials("router"));
    private final Instance instance = Instance.newBuilder().setId("expert-0").setEndpoint(expert.endpoint()).build();

    @AfterEach
    void close() {
        loader.close();
        expert.close();
    }

    @Test
    void prepareThenCommit_sendTheStages_asTheRouterIdentity() {
        loader.prepare(instance, 4, List.of(new AssignedExpert(0, 1), new AssignedExpert(2, 3)), TIMEOUT);
        assertThat(expert.prepared()).isEqualTo(4);
        assertThat(expert.loads).singleElement()
                .isEqualTo(new FakeExpertService.Load("router", "expert-0", 4, 2));
        loader.commit(instance, 4, TIMEOUT);
        assertThat(expert.served()).isEqualTo(4);
        assertThat(expert.prepared()).isZero();
        loader.commit(instance, 4, TIMEOUT); // a repeat
        assertThat(expert.calls).extracting(FakeExpertService.Call::stage).containsExactly(
                AssignmentStage.ASSIGNMENT_STAGE_PREPARE, AssignmentStage.ASSIGNMENT_STAGE_COMMIT,
                AssignmentStage.ASSIGNMENT_STAGE_COMMIT);
    }

    @Test
    void prepareThenAbort_dropsThePreparedEpoch_andAbortOfAnUnknownOneIsANoOp() {
        loader.prepare(instance, 4, List.of(new AssignedExpert(0, 1)), TIMEOUT);
        loader.abort(instance, 4, TIMEOUT);
        assertThat(expert.prepared()).isZero();
        loader.abort(instance, 9, TIMEOUT);
        assertThat(expert.calls).extracting(FakeExpertService.Call::code).containsOnly(Status.Code.OK);
    }

    @Test
    void held_isTheServedEpochWithItsExperts_andThePreparedEpoch() {
        assertThat(loader.held(instance, TIMEOUT)).isEqualTo(HeldEpochs.NONE);
        loader.prepare(instance, 5, List.of(new AssignedExpert(0, 1), new AssignedExpert(2, 3)), TIMEOUT);
        loader.commit(instance, 5, TIMEOUT);
        loader.prepare(instance, 7, List.of(), TIMEOUT);
        HeldEpochs held = loader.held(instance, TIMEOUT);
        assertThat(held).isEqualTo(new HeldEpochs(5, List.of(new AssignedExpert(0, 1), new AssignedExpert(2, 3)), 7));
        assertThat(held.highest()).isEqualTo(7);
        Instance gone = Instance.newBuilder().setId("expert-0").setEndpoint("127.0.0.1:1").build();
        assertThatThrownBy(() -> loader.held(gone, Duration.ofSeconds(5)))
                .isExactlyInstanceOf(IllegalStateException.class).hasMessageStartingWith("UNAVAILABLE");
    }

    @Test
    void commitOfAnEpochNeitherPreparedNorServed_isAnInstanceRefusal() {
        assertThatThrownBy(() -> loader.commit(instance, 7, TIMEOUT)).isInstanceOf(InstanceRefusedException.class)
                .hasMessage("FAILED_PRECONDITION cannot commit epoch 7: it is neither prepared nor served (serving "
                        + "epoch 0)");
    }

    @Test
    void unreachableOrFailingInstance_isAnIllegalStateNamingTheStatus_notARefusal() {
        expert.failingStages.add(AssignmentStage.ASSIGNMENT_STAGE_COMMIT);
        loader.prepare(instance, 4, List.of(), TIMEOUT);
        assertThatThrownBy(() -> loader.commit(instance, 4, TIMEOUT)).isExactlyInstanceOf(IllegalStateException.class)
                .hasMessage("UNAVAILABLE disk on fire");
        assertThat(expert.prepared()).isEqualTo(4);
        Instance gone = Instance.newBuilder().setId("expert-0").setEndpoint("127.0.0.1:1").build();
        assertThatThrownBy(() -> loader.prepare(gone, 4, List.of(), Duration.ofSeconds(5)))
                .isExactlyInstanceOf(IllegalStateException.class).hasMessageStartingWith("UNAVAILABLE");
    }

    @Test
    void placingOnAnInstanceSet_shutsTheChannelsOfInstancesThatLeft_andKeepsTheOthers() {
        Instance left = Instance.newBuilder().setId("expert-1").setEndpoint("127.0.0.1:1").build();
        loader.prepare(instance, 4, List.of(), TIMEOUT);
        ManagedChannel kept = loader.channel(instance);
        ManagedChannel gone = loader.channel(left);
        loader.placingOn(List.of(instance));
        assertThat(gone.isShutdown()).isTrue();
        assertThat(kept.isShutdown()).isFalse();
        assertThat(loader.channel(instance)).isSameAs(kept);
        loader.commit(instance, 4, TIMEOUT);
        assertThat(expert.served()).isEqualTo(4);
        // One that comes back gets a new channel.
        assertThat(loader.channel(left)).isNotSameAs(gone).satisfies(ch -> assertThat(ch.isShutdown()).isFalse());
    }

    @Test
    void prepareOfAnEpochOlderThanTheServedOne_failsWithTheInstancesReason() {
        loader.prepare(instance, 5, List.of(), TIMEOUT);
        loader.commit(instance, 5, TIMEOUT);
        assertThatThrownBy(() -> loader.prepare(instance, 3, List.of(), TIMEOUT))
                .isInstanceOf(IllegalStateException.class)
                .hasMessage("FAILED_PRECONDITION assignment epoch 3 is older than the served epoch 5");
    }
}
