package io.moemesh.router.coordination;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import com.google.protobuf.Any;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.router.grpc.GrpcInstanceLoader;
import io.moemesh.router.support.FakeExpertService;
import io.moemesh.router.support.RouterTestMesh;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Whether a refused PREPARE counts against the pod, decided from what the expert-service sends on the wire: the
 * ErrorInfo reason EPOCH_NUMBER_REFUSED of expert.proto marks a refusal of the epoch's number whatever its message
 * says; without it only an older expert-service's known wording does (the rolling-upgrade fallback). Over a real
 * socket with mutual TLS, through the router's GrpcInstanceLoader, against a fake that answers PREPARE with the
 * test's status.
 */
class EpochNumberRefusalWireTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private final FakeExpertService expert = new FakeExpertService(RouterTestMesh.certs(), "expert-0");
    private final GrpcInstanceLoader loader = new GrpcInstanceLoader(RouterTestMesh.certs().channelCredentials("router"));
    private final Instance instance = Instance.newBuilder().setId("expert-0").setEndpoint(expert.endpoint()).build();

    @AfterEach
    void close() {
        loader.close();
        expert.close();
    }

    private static com.google.rpc.Status refusal(String message, ErrorInfo... details) {
        com.google.rpc.Status.Builder s = com.google.rpc.Status.newBuilder()
                .setCode(Status.Code.FAILED_PRECONDITION.value()).setMessage(message);
        for (ErrorInfo d : details) {
            s.addDetails(Any.pack(d));
        }
        return s.build();
    }

    private static ErrorInfo info(String domain, String reason) {
        return ErrorInfo.newBuilder().setDomain(domain).setReason(reason).putMetadata("served_epoch", "5")
                .putMetadata("prepared_epoch", "0").build();
    }

    private Throwable refusedPrepare(com.google.rpc.Status status) {
        expert.prepareRefusal = status;
        return catchThrowable(() -> loader.prepare(instance, 3, List.of(new AssignedExpert(0, 1)), TIMEOUT));
    }

    @Test
    void prepareRefusal_markedEpochNumberRefused_isNoStrike_howeverItsMessageIsWorded() {
        Throwable t = refusedPrepare(refusal("epoch 3 cannot be taken: this pod is already on 5",
                info("expert.moemesh.io", "EPOCH_NUMBER_REFUSED")));

        assertThat(t).isInstanceOf(InstanceRefusedException.class)
                .hasMessage("FAILED_PRECONDITION epoch 3 cannot be taken: this pod is already on 5");
        assertThat(((InstanceRefusedException) t).epochNumber()).isTrue();
        assertThat(Quarantine.refusesTheEpoch(t)).isTrue();
    }

    @Test
    void prepareRefusal_withoutTheMark_andAMessageNoExpertServiceUsedForTheNumber_isAStrike() {
        Throwable t = refusedPrepare(refusal("epoch 3 cannot be taken: this pod is already on 5"));

        assertThat(t).isInstanceOf(InstanceRefusedException.class);
        assertThat(((InstanceRefusedException) t).epochNumber()).isFalse();
        assertThat(Quarantine.refusesTheEpoch(t)).isFalse();
    }

    @Test
    void prepareRefusal_withAnotherReasonOrDomain_isAStrike() {
        Throwable otherReason = refusedPrepare(refusal("assignment is for instance \"expert-1\", this is expert-0",
                info("expert.moemesh.io", "STALE_EPOCH")));
        Throwable otherDomain = refusedPrepare(refusal("epoch 3 cannot be taken",
                info("example.com", "EPOCH_NUMBER_REFUSED")));

        assertThat(Quarantine.refusesTheEpoch(otherReason)).isFalse();
        assertThat(Quarantine.refusesTheEpoch(otherDomain)).isFalse();
    }

    @Test
    void prepareRefusal_ofAnOlderExpertServiceWithoutTheMark_isStillToldByItsMessage() {
        Throwable t = refusedPrepare(refusal("assignment epoch 3 is older than the served epoch 5"));

        assertThat(((InstanceRefusedException) t).epochNumber()).isFalse();
        assertThat(Quarantine.refusesTheEpoch(t)).isTrue();
    }

    @Test
    void prepareOfAnEpochOlderThanTheServedOne_isRefusedMarked_asTheRealExpertServiceDoes() {
        loader.prepare(instance, 5, List.of(new AssignedExpert(0, 1)), TIMEOUT);
        loader.commit(instance, 5, TIMEOUT);

        Throwable t = catchThrowable(() -> loader.prepare(instance, 3, List.of(new AssignedExpert(0, 1)), TIMEOUT));

        assertThat(t).isInstanceOf(InstanceRefusedException.class)
                .hasMessage("FAILED_PRECONDITION assignment epoch 3 is older than the served epoch 5");
        assertThat(((InstanceRefusedException) t).epochNumber()).as("the fake's ErrorInfo mark").isTrue();
        assertThat(Quarantine.refusesTheEpoch(t)).isTrue();
    }

    @Test
    void otherStatusThanFailedPrecondition_isNoRefusal_evenWithTheMark() {
        Throwable t = refusedPrepare(com.google.rpc.Status.newBuilder().setCode(Status.Code.UNAVAILABLE.value())
                .setMessage("disk on fire").addDetails(Any.pack(info("expert.moemesh.io", "EPOCH_NUMBER_REFUSED")))
                .build());

        assertThat(t).isExactlyInstanceOf(IllegalStateException.class).hasMessage("UNAVAILABLE disk on fire");
        assertThat(Quarantine.refusesTheEpoch(t)).isFalse();
    }
}
