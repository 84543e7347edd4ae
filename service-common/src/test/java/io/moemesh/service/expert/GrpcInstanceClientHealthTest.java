package io.moemesh.service.expert;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.grpc.stub.StreamObserver;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import io.moemesh.proto.expert.v1.ExpertBatchResponse;
import io.moemesh.proto.expert.v1.ExpertServiceGrpc;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The gateway's client to an instance against a real gRPC server (health v1 and a fake ExpertService) on a real
 * loopback port: its health watch follows the instance down and up again, including a restart on the same port.
 */
class GrpcInstanceClientHealthTest {
    private static final Duration SERVING_AGAIN = Duration.ofSeconds(10);

    /** Expert "computation" is the identity: each message's activations come back as its outputs. */
    private static final class EchoExperts extends ExpertServiceGrpc.ExpertServiceImplBase {
        @Override
        public StreamObserver<ExpertBatchRequest> expertBatch(StreamObserver<ExpertBatchResponse> out) {
            return new StreamObserver<>() {
                @Override
                public void onNext(ExpertBatchRequest r) {
                    out.onNext(ExpertBatchResponse.newBuilder().setBatchId(r.getBatchId()).setLayer(r.getLayer())
                            .setOutputs(r.getActivations()).build());
                }

                @Override
                public void onError(Throwable t) {
                }

                @Override
                public void onCompleted() {
                    out.onCompleted();
                }
            };
        }
    }

    private static GrpcServerLifecycle instance(int port) {
        GrpcServerLifecycle s = new GrpcServerLifecycle("fake expert", "127.0.0.1", port, InsecureServerCredentials.create(), 1 << 20, Duration.ofMillis(200),
                List.of(new EchoExperts()), List.of());
        s.start();
        return s;
    }

    private static ExpertCall call(float... activations) {
        return new ExpertCall(1, 0, activations, 1, activations.length, new int[] {1}, new int[] {0}, new float[] {1f});
    }

    @Test
    void instanceRestartedOnTheSamePort_healthGoesDownAndServingAgain_andTheNextCallSucceeds() throws Exception {
        GrpcServerLifecycle first = instance(0);
        int port = first.port();
        List<InstanceHealth> seen = new CopyOnWriteArrayList<>();
        try (GrpcInstanceClient client = new GrpcInstanceClient("expert-0", "127.0.0.1:" + port,
                InsecureChannelCredentials.create(), DType.DTYPE_F32, 1 << 20)) {
            client.onHealthChange(seen::add);
            await().atMost(SERVING_AGAIN).until(() -> client.health() == InstanceHealth.SERVING);
            assertThat(client.call(call(1, 2, 3)).get(10, TimeUnit.SECONDS)).containsExactly(1, 2, 3);

            first.stop();
            await().until(() -> client.health() == InstanceHealth.UNREACHABLE);
            assertThat(client.health().usable()).isFalse();
            assertThatThrownBy(() -> client.call(call(4)).get(10, TimeUnit.SECONDS)).isInstanceOf(ExecutionException.class);

            GrpcServerLifecycle second = instance(port);
            try {
                await("SERVING again after the restart on port " + port).atMost(SERVING_AGAIN)
                        .until(() -> client.health() == InstanceHealth.SERVING);
                assertThat(client.call(call(5, 6)).get(10, TimeUnit.SECONDS)).containsExactly(5, 6);

                second.setServing(false);
                await().until(() -> client.health() == InstanceHealth.NOT_SERVING);
                assertThat(client.health().usable()).isFalse();
                second.setServing(true);
                await().until(() -> client.health() == InstanceHealth.SERVING);
            } finally {
                second.stop();
            }
        }
        assertThat(seen).containsSubsequence(InstanceHealth.SERVING, InstanceHealth.UNREACHABLE, InstanceHealth.SERVING,
                InstanceHealth.NOT_SERVING, InstanceHealth.SERVING);
    }

    @Test
    void nothingListening_unreachable_thenServingOnceAnInstanceStartsThere() throws Exception {
        GrpcServerLifecycle probe = instance(0);
        int port = probe.port();
        probe.stop();
        try (GrpcInstanceClient client = new GrpcInstanceClient("expert-1", "127.0.0.1:" + port,
                InsecureChannelCredentials.create(), DType.DTYPE_F32, 1 << 20)) {
            await().until(() -> client.health() == InstanceHealth.UNREACHABLE);
            GrpcServerLifecycle late = instance(port);
            try {
                await().atMost(SERVING_AGAIN).until(() -> client.health() == InstanceHealth.SERVING);
                assertThat(client.call(call(7)).get(10, TimeUnit.SECONDS)).containsExactly(7);
            } finally {
                late.stop();
            }
        }
    }
}
