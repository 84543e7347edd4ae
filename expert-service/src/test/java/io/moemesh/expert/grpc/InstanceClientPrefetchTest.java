package io.moemesh.expert.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moemesh.expert.support.TestCertificates;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.DescribeInstanceRequest;
import io.moemesh.proto.expert.v1.DescribeInstanceResponse;
import io.moemesh.proto.expert.v1.ExpertRef;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.expert.GrpcInstanceClient;
import io.moemesh.service.expert.PrefetchAnswer;
import io.moemesh.service.expert.PrefetchHints;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The gateway's client to an instance ({@link GrpcInstanceClient}) sends Prefetch hints to a real expert-service
 * over mutual TLS, on the channel and with the credentials of its ExpertBatch stream (identity gateway, a mesh
 * member that is not a placer), and hands back the instance's counts.
 */
class InstanceClientPrefetchTest extends PlacedInstanceTestBase {
    private GrpcInstanceClient client;

    @BeforeAll
    void openClient() {
        client = new GrpcInstanceClient("expert-0", "127.0.0.1:" + grpcServer.port(), TestCertificates.as("gateway"),
                DType.DTYPE_F32, 64 << 20);
    }

    @AfterAll
    void closeClient() {
        client.close();
    }

    private DescribeInstanceResponse describe() {
        return ExpertServiceGrpc.newBlockingStub(channel).describeInstance(DescribeInstanceRequest.getDefaultInstance());
    }

    private static PrefetchHints.Expert hint(ExpertRef r) {
        return new PrefetchHints.Expert(r.getLayer(), r.getExpert());
    }

    private PrefetchAnswer prefetch(long epoch, PrefetchHints.Expert... experts) {
        return client.prefetch(new PrefetchHints(epoch, List.of(experts))).orTimeout(10, TimeUnit.SECONDS).join();
    }

    @Test
    void prefetch_countsHeldResidentNotHeldAndUnknownHints_andTheQueuedExpertBecomesResident() {
        DescribeInstanceResponse d = describe();
        ExpertRef resident = d.getResidentExperts(0);
        ExpertRef notResident = d.getAssignedExpertsList().stream()
                .filter(a -> !d.getResidentExpertsList().contains(a)).findFirst().orElseThrow();
        assertThat(held(1, 0)).as("layer 1 expert 0 lives on expert-1").isFalse();

        PrefetchAnswer a = prefetch(EPOCH,
                // The resident hint first: the queued load may evict it (LRU) once it runs.
                hint(resident), hint(notResident),
                new PrefetchHints.Expert(1, 0), // assigned to the other instance
                new PrefetchHints.Expert(0, CONFIG.numExperts() + 5), // no such expert
                new PrefetchHints.Expert(CONFIG.numLayers(), 0)); // no such layer

        assertThat(a).isEqualTo(new PrefetchAnswer(1, 1, 3));
        await().atMost(Duration.ofSeconds(10)).until(() -> describe().getResidentExpertsList().contains(notResident));
        assertThat(prefetch(EPOCH, hint(notResident))).as("now resident").isEqualTo(new PrefetchAnswer(0, 1, 0));
    }

    @Test
    void prefetch_underAnEpochTheInstanceDoesNotServe_ignoresEveryHint() {
        ExpertRef assigned = describe().getAssignedExperts(0);
        assertThat(prefetch(EPOCH - 1, hint(assigned), hint(assigned))).isEqualTo(new PrefetchAnswer(0, 0, 2));
    }

    @Test
    void prefetch_withoutHints_answersZeroCounts() {
        assertThat(prefetch(EPOCH)).isEqualTo(new PrefetchAnswer(0, 0, 0));
    }

    @Test
    void prefetch_toAnInstanceThatDoesNotListen_failsTheFutureWithUnavailableNamingTheInstance() {
        try (GrpcInstanceClient gone = new GrpcInstanceClient("expert-9", "127.0.0.1:1", TestCertificates.as("gateway"),
                DType.DTYPE_F32, 64 << 20)) {
            assertThatThrownBy(() -> gone.prefetch(new PrefetchHints(EPOCH, List.of(new PrefetchHints.Expert(0, 0))))
                    .orTimeout(10, TimeUnit.SECONDS).join())
                    .isInstanceOf(CompletionException.class)
                    .cause().isInstanceOfSatisfying(StatusRuntimeException.class, e -> {
                        assertThat(e.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
                        assertThat(e.getStatus().getDescription()).startsWith("expert-9: Prefetch");
                    });
        }
    }
}
