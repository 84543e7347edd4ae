package io.moemesh.gateway.health;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.moemesh.gateway.support.ScratchPlacement;
import io.moemesh.gateway.GatewayApplication;
import io.moemesh.model.config.ModelConfig;
import io.moemesh.model.config.ModelConfigReader;
import io.moemesh.model.golden.TestModels;
import io.moemesh.proto.gateway.v1.GatewayServiceGrpc;
import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.GenerateResponse;
import io.moemesh.proto.gateway.v1.SamplingParams;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.service.grpc.GrpcServerLifecycle;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.springframework.boot.SpringApplication;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * Shutdown (what SIGTERM triggers): the gateway's gRPC health turns NOT_SERVING before draining begins, so
 * clients stop picking it while its in-flight streams still finish, and it never says SERVING again. The stream
 * is kept in flight by an expert stand-in that holds its messages until NOT_SERVING was seen, so the order does
 * not depend on how fast the machine generates.
 */
class ShutdownHealthTest {

    @Test
    void shutdown_grpcHealthNotServingBeforeTheInFlightStreamEnds_andNeverServingAgain() throws Exception {
        FakeExpert expert = new FakeExpert();
        ModelConfig c = ModelConfigReader.read(TestModels.dir(TestModels.MIXTRAL));
        Path placement = ScratchPlacement.file("moemesh-shutdown-test");
        PlacementFiles.write(placement, EvenPlacement.build(1, List.of(Instance.newBuilder().setId("expert-0")
                .setEndpoint("127.0.0.1:" + expert.port()).build()), c.numLayers(), c.numExperts(), c.hasSharedExpert(), 1));
        ConfigurableApplicationContext ctx = SpringApplication.run(GatewayApplication.class,
                "--moemesh.gateway.model-dir=" + TestModels.dir(TestModels.MIXTRAL), "--moemesh.gateway.grpc-port=0",
                "--server.port=0", "--management.server.port=0", "--moemesh.gateway.kv-cache-tokens=1024",
                "--moemesh.gateway.shutdown-grace=60s", "--moemesh.gateway.placement-file=" + placement,
                // the stand-in is plaintext: the explicit opt-out of mutual TLS
                "--moemesh.gateway.tls.mode=plaintext", "--moemesh.gateway.dispatch.step-deadline=60s");
        ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", ctx.getBean(GrpcServerLifecycle.class).port())
                .usePlaintext().build();
        try {
            List<String> events = new CopyOnWriteArrayList<>();
            // Cancelled once the stream drained: an open call would hold the server's graceful stop for its grace.
            Context.CancellableContext watch = Context.current().withCancellation();
            watch.run(() -> HealthGrpc.newStub(ch).watch(HealthCheckRequest.newBuilder().setService("").build(),
                    new StreamObserver<>() {
                @Override
                public void onNext(HealthCheckResponse r) {
                    events.add(r.getStatus().name());
                }

                @Override
                public void onError(Throwable t) {
                }

                @Override
                public void onCompleted() {
                }
            }));
            await().until(() -> events.contains(ServingStatus.SERVING.name()));

            AtomicInteger tokens = new AtomicInteger();
            CompletableFuture<Status> done = new CompletableFuture<>();
            GatewayServiceGrpc.newStub(ch).generate(GenerateRequest.newBuilder().setPrompt("drain me")
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(400).setIgnoreEos(true)).build(),
                    new StreamObserver<>() {
                        @Override
                        public void onNext(GenerateResponse r) {
                            tokens.addAndGet(r.getTokenIdsCount());
                        }

                        @Override
                        public void onError(Throwable t) {
                            done.complete(Status.fromThrowable(t));
                        }

                        @Override
                        public void onCompleted() {
                            events.add("stream completed");
                            done.complete(Status.OK);
                        }
                    });
            await().atMost(Duration.ofSeconds(60)).until(() -> tokens.get() > 0);
            expert.hold();
            CompletableFuture<Void> closing = CompletableFuture.runAsync(ctx::close);
            await("NOT_SERVING while the stream is held in flight").atMost(Duration.ofSeconds(30))
                    .until(() -> events.contains(ServingStatus.NOT_SERVING.name()));
            assertThat(events).as("the stream is still in flight").doesNotContain("stream completed");
            expert.release();
            assertThat(done.get(120, TimeUnit.SECONDS).getCode()).isEqualTo(Status.Code.OK);
            assertThat(tokens.get()).isEqualTo(400);
            watch.cancel(null);
            closing.get(120, TimeUnit.SECONDS);

            int serving = events.indexOf(ServingStatus.SERVING.name());
            int notServing = events.indexOf(ServingStatus.NOT_SERVING.name());
            assertThat(notServing).as("NOT_SERVING after SERVING: %s", events).isGreaterThan(serving);
            assertThat(events.indexOf("stream completed")).as("the stream drained after NOT_SERVING: %s", events)
                    .isGreaterThan(notServing);
            assertThat(events.subList(notServing, events.size())).doesNotContain(ServingStatus.SERVING.name());
        } finally {
            expert.release();
            ch.shutdownNow();
            if (ctx.isActive()) {
                ctx.close();
            }
            expert.close();
        }
    }
}
