package io.moemesh.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.moemesh.cli.mesh.RunningMesh;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** A real SIGTERM to the gateway process: in-flight streams finish, then the process exits. */
class GatewaySigtermTest {

    @Test
    void sigterm_drainsInFlightStreams_thenTheGatewayExits() throws Exception {
        try (RunningMesh mesh = TestMeshes.start("sigterm", TestModels.MIXTRAL, 1, 1)) {
            ProcessHandle gateway = mesh.state().gateway().process().orElseThrow();
            String[] hp = mesh.gatewayEndpoint().split(":");
            ManagedChannel ch = NettyChannelBuilder.forAddress(hp[0], Integer.parseInt(hp[1])).usePlaintext().build();
            try {
                AtomicInteger tokens = new AtomicInteger();
                CompletableFuture<Status> end = new CompletableFuture<>();
                GatewayServiceGrpc.newStub(ch).withDeadlineAfter(2, TimeUnit.MINUTES).generate(GenerateRequest.newBuilder()
                        .setPrompt("drain").setSampling(SamplingParams.newBuilder().setMaxTokens(400).setIgnoreEos(true))
                        .build(), new StreamObserver<>() {
                            public void onNext(GenerateResponse r) {
                                tokens.addAndGet(r.getTokenIdsCount());
                            }

                            public void onError(Throwable t) {
                                end.complete(Status.fromThrowable(t));
                            }

                            public void onCompleted() {
                                end.complete(Status.OK);
                            }
                        });
                await().atMost(Duration.ofMinutes(1)).until(() -> tokens.get() > 0);
                assertThat(gateway.destroy()).as("SIGTERM sent").isTrue();
                assertThat(end.get(2, TimeUnit.MINUTES).getCode()).isEqualTo(Status.Code.OK);
                assertThat(tokens.get()).isEqualTo(400);
                gateway.onExit().get(2, TimeUnit.MINUTES);
                assertThat(gateway.isAlive()).isFalse();
            } finally {
                ch.shutdownNow();
            }
        }
    }
}
